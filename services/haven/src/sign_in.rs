//! `haven sign-in`: signs in to identity over gRPC with a login and a password read from
//! standard input (never a flag: flags end up in shell history and process lists), accepts
//! the AUP in force when asked to, and prints the tokens as JSON for scripts and grpcurl.

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use haven_proto::v1 as pb;
use haven_proto::v1::identity_client::IdentityClient;

pub async fn run(grpc_addr: SocketAddr, login: &str, accept_aup: bool) -> anyhow::Result<ExitCode> {
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password).context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']);
    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc_addr}"))
        .context("--grpc-addr")?
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .with_context(|| format!("connecting to identity at {grpc_addr}"))?;
    let mut client = IdentityClient::new(channel);
    let request = pb::SignInRequest { login: login.to_owned(), password: password.to_owned() };
    let mut tokens = client
        .sign_in(request)
        .await
        .map_err(|status| anyhow::anyhow!("sign-in refused: {}", status.message()))?
        .into_inner()
        .tokens
        .unwrap_or_default();
    let refresh_token = tokens.refresh_token.clone();
    if tokens.aup_required && accept_aup {
        let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {}", tokens.access_token).parse()?;
        let mut get = tonic::Request::new(pb::GetAupRequest {});
        get.metadata_mut().insert("authorization", bearer.clone());
        let version = client.get_aup(get).await.map_err(|s| anyhow::anyhow!("{}", s.message()))?.into_inner();
        let mut accept = tonic::Request::new(pb::AcceptAupRequest { aup_version: version.aup_version });
        accept.metadata_mut().insert("authorization", bearer);
        let accepted =
            client.accept_aup(accept).await.map_err(|s| anyhow::anyhow!("accepting the AUP: {}", s.message()))?;
        tokens = accepted.into_inner().tokens.unwrap_or_default();
    }
    let output = serde_json::json!({
        "access_token": tokens.access_token,
        "access_expires_at": tokens.access_expires_at.map(|t| t.seconds),
        "refresh_token": refresh_token,
        "aup_required": tokens.aup_required,
    });
    println!("{output}");
    if tokens.aup_required {
        eprintln!(
            "haven: the acceptable use policy in force is not accepted yet; only AUP calls are allowed (--accept-aup)"
        );
    }
    Ok(ExitCode::SUCCESS)
}
