//! `haven identity bootstrap`: the trust and its first trust admin on a new deployment, written
//! straight to the event log (the log's RPCs are cluster-internal: whoever can reach them is
//! an operator). The password is read from standard input, never a flag.

use std::io::BufRead;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use haven_authz::UserId;
use haven_eventlog_client::{EventLog, GrpcEventLog};
use haven_identity::IdentityApp;
use haven_identity::bootstrap::{Bootstrap, bootstrap};
use haven_identity::domain::UnixTime;
use haven_identity::password::PasswordHasher;

use crate::config::HavenConfig;

#[derive(Clone, Debug, clap::Args)]
pub struct BootstrapArgs {
    /// The trust's id, e.g. `fernhill` (its stream is `trust-<id>`).
    #[arg(long)]
    pub trust_id: String,
    /// The trust's name.
    #[arg(long)]
    pub trust_name: String,
    /// The first trust admin's user id.
    #[arg(long)]
    pub admin_id: String,
    /// The first trust admin's name.
    #[arg(long)]
    pub admin_name: String,
    /// The first trust admin's login.
    #[arg(long)]
    pub admin_login: String,
}

pub async fn run(config: HavenConfig, args: &BootstrapArgs) -> anyhow::Result<ExitCode> {
    let admin_id = UserId::parse(&args.admin_id).map_err(|e| anyhow::anyhow!("--admin-id: {e}"))?;
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password).context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']).to_owned();
    let log = GrpcEventLog::connect_lazy(&config.eventlog_url, Duration::from_secs(30))
        .map_err(|e| anyhow::anyhow!("eventlog_url {:?}: {e}", config.eventlog_url))?;
    let log: Arc<dyn EventLog> = Arc::new(log);
    let hasher = PasswordHasher::new(config.identity.password_cost())
        .map_err(|e| anyhow::anyhow!("invalid configuration: identity password cost: {e}"))?;
    let at = UnixTime(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64);
    let request = Bootstrap {
        trust_id: args.trust_id.clone(),
        trust_name: args.trust_name.clone(),
        admin_id,
        admin_name: args.admin_name.clone(),
        admin_login: args.admin_login.clone(),
        password,
        at,
    };
    bootstrap(&IdentityApp::new(log), &hasher, request).await.map_err(|e| anyhow::anyhow!("bootstrap refused: {e}"))?;
    println!("trust {} established; {} is its trust admin and can sign in", args.trust_id, args.admin_login);
    Ok(ExitCode::SUCCESS)
}
