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

/// A client of identity at `grpc_addr`.
pub(crate) async fn connect(grpc_addr: SocketAddr) -> anyhow::Result<IdentityClient<tonic::transport::Channel>> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc_addr}"))
        .context("--grpc-addr")?
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .with_context(|| format!("connecting to identity at {grpc_addr}"))?;
    Ok(IdentityClient::new(channel))
}

pub async fn run(grpc_addr: SocketAddr, login: &str, accept_aup: bool) -> anyhow::Result<ExitCode> {
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password).context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']);
    let mut client = connect(grpc_addr).await?;
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

/// `haven identity rotate-key`: a trust admin's access token from `HAVEN_TOKEN` (an
/// environment variable, not a flag, for the same reason as the password), one call to
/// `RotateSigningKey`; prints the new key id and the keys that still verify as JSON.
pub async fn rotate_key(grpc_addr: SocketAddr) -> anyhow::Result<ExitCode> {
    let token = std::env::var("HAVEN_TOKEN")
        .context("HAVEN_TOKEN: set it to a trust admin's access token (`haven sign-in` prints one)")?;
    let mut client = connect(grpc_addr).await?;
    let mut request = tonic::Request::new(pb::RotateSigningKeyRequest {});
    request.metadata_mut().insert("authorization", format!("Bearer {}", token.trim()).parse().context("HAVEN_TOKEN")?);
    let rotated = client
        .rotate_signing_key(request)
        .await
        .map_err(|status| anyhow::anyhow!("rotation refused: {}", status.message()))?
        .into_inner();
    let out = serde_json::json!({ "key_id": rotated.key_id, "verifying_key_ids": rotated.verifying_key_ids });
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}
