//! Tokens end to end: sign-in, refresh, sign-out and leavers; school systems' client
//! credentials; and the attacks a verifier must refuse (alg none, HS256 with the public key,
//! expired, not yet valid, wrong audience or issuer, tampered, unknown key, too long).

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Fixture, accounts, admin, now, register, school, user};
use haven_authz::token::{AUDIENCE, ISSUER};
use haven_authz::{Claims, PrincipalKind, TokenError};
use haven_identity::Error;
use haven_identity::domain::{UserCommand, UserError};
use haven_identity::keys::KeyRing;
use haven_kernel::ErrorCode;

const GOOD: &str = "heron lamp orchard 42";

async fn signed_up() -> (Fixture, haven_identity::Accounts) {
    let fixture = Fixture::start().await;
    let accounts = accounts(&fixture);
    fixture.app.register_user(&admin(), register("r-ahmed", Some("oak"))).await.unwrap();
    accounts.set_password(&admin(), &user("r-ahmed"), GOOD, None).await.unwrap();
    let users = fixture.users.clone();
    fixture.wait_until("the account reaches the directory", || users.by_login("r-ahmed@example.org").is_some()).await;
    (fixture, accounts)
}

fn claims(at: i64) -> Claims {
    Claims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: "user-r-ahmed".into(),
        exp: at + 600,
        nbf: at,
        iat: at,
        jti: "j".into(),
        kind: "user".into(),
        sid: Some("s".into()),
        aup: 1,
        grants: vec![],
        school: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_refresh_and_sign_out() {
    let (fixture, accounts) = signed_up().await;
    let verifier = accounts.tokens().verifier().clone();
    let pair = accounts.sign_in("r-ahmed@example.org", GOOD, now()).await.unwrap();
    assert!(pair.aup_required, "no AUP accepted yet");
    assert!(pair.access_expires_at - now().0 <= 900, "access tokens live at most 15 minutes");
    let principal = verifier.verify(&pair.access_token, now().0).unwrap().principal().unwrap();
    assert_eq!((principal.id.as_str(), principal.kind), ("user-r-ahmed", PrincipalKind::User));

    let refresh = pair.refresh_token.clone().unwrap();
    let again = accounts.refresh(&refresh, now()).await.unwrap();
    assert!(verifier.verify(&again.access_token, now().0).is_ok());
    // A different last character of the secret (a fixed one would match 1 token in 16).
    let last = if refresh.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{last}", &refresh[..refresh.len() - 1]);
    let error = accounts.refresh(&tampered, now()).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::Unauthenticated, "{error}");

    accounts.sign_out(&principal, now()).await.unwrap();
    let error = accounts.refresh(&refresh, now()).await.unwrap_err();
    assert!(matches!(error, Error::User(UserError::SessionNotUsable)), "a signed-out session cannot refresh");

    // A leaver: every session revoked at once, refresh refused.
    let second = accounts.sign_in("r-ahmed@example.org", GOOD, now()).await.unwrap();
    let leave = UserCommand::Disable { disabled_by: "user-admin".into(), left_on: now(), at: now() };
    fixture.app.user_command(&admin(), &user("r-ahmed"), leave).await.unwrap();
    let error = accounts.refresh(second.refresh_token.as_deref().unwrap(), now()).await.unwrap_err();
    assert!(matches!(error, Error::User(UserError::Disabled)), "{error}");
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_works_once_and_a_copy_used_later_ends_the_session() {
    let (fixture, accounts) = signed_up().await;
    let t = now();
    let pair = accounts.sign_in("r-ahmed@example.org", GOOD, t).await.unwrap();
    let first = pair.refresh_token.unwrap();
    let second = accounts.refresh(&first, t).await.unwrap().refresh_token.unwrap();
    assert_ne!(second, first, "each refresh hands out a new refresh token");

    // The same browser racing itself (within the leeway): refused, the session goes on.
    let error = accounts.refresh(&first, t).await.unwrap_err();
    assert!(matches!(error, Error::User(UserError::SessionNotUsable)), "{error}");
    let third = accounts.refresh(&second, t).await.unwrap().refresh_token.unwrap();

    // A copy of a used-up token, presented later: refused, and the session is over for the
    // holder of the newest token too.
    let later = haven_identity::domain::UnixTime(t.0 + 60);
    let error = accounts.refresh(&first, later).await.unwrap_err();
    assert!(matches!(error, Error::User(UserError::SessionNotUsable)), "{error}");
    let error = accounts.refresh(&third, later).await.unwrap_err();
    assert!(matches!(error, Error::User(UserError::SessionNotUsable)), "{error}");

    // The log says what happened, in order.
    let slice = fixture
        .shared
        .read_stream(haven_eventlog_client::ReadStream::forwards(
            haven_kernel::StreamId::parse("user-r-ahmed").unwrap(),
            haven_kernel::Version(0),
            100,
        ))
        .await
        .unwrap();
    let types: Vec<&str> =
        slice.events.iter().map(|e| e.event_type.as_str()).skip_while(|t| *t != "identity.UserSignedIn").collect();
    assert_eq!(
        types,
        [
            "identity.UserSignedIn",
            "identity.UserSessionRefreshed",
            "identity.UserSessionRefreshed",
            "identity.RefreshTokenReused",
            "identity.SessionsRevoked",
        ]
    );
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_the_aup_gives_a_token_that_carries_it() {
    let (fixture, accounts) = signed_up().await;
    fixture.app.publish_aup(&admin(), 1, [1; 32]).await.unwrap();
    let pair = accounts.sign_in("r-ahmed@example.org", GOOD, now()).await.unwrap();
    assert!(pair.aup_required);
    let verifier = accounts.tokens().verifier().clone();
    let principal = verifier.verify(&pair.access_token, now().0).unwrap().principal().unwrap();
    assert_eq!(principal.aup_version, 0);
    let error = accounts.accept_aup(&principal, 2, now()).await.unwrap_err();
    assert!(matches!(error, Error::User(UserError::NotCurrentAup { offered: 2, current: 1 })), "{error}");
    let accepted = accounts.accept_aup(&principal, 1, now()).await.unwrap();
    assert!(!accepted.aup_required);
    assert_eq!(verifier.verify(&accepted.access_token, now().0).unwrap().aup, 1);
    let later = accounts.refresh(pair.refresh_token.as_deref().unwrap(), now()).await.unwrap();
    assert!(!later.aup_required, "a refresh after accepting carries the acceptance");
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_school_system_exchanges_its_credential_for_a_one_school_token() {
    let fixture = Fixture::start().await;
    let accounts = accounts(&fixture);
    let secret = accounts.issue_system_credential(&admin(), "oak-filter", &school("oak"), now()).await.unwrap();
    let error = accounts.issue_system_credential(&admin(), "elm-filter", &school("ash"), now()).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::InvalidArgument, "an unknown school: {error}");
    let pair = accounts.exchange_client_credentials("oak-filter", &secret, now()).await.unwrap();
    assert!(pair.refresh_token.is_none());
    let principal = accounts.tokens().verifier().verify(&pair.access_token, now().0).unwrap().principal().unwrap();
    assert_eq!(principal.kind, PrincipalKind::SchoolSystem);
    assert_eq!(principal.school, Some(school("oak")));
    assert!(principal.grants.is_empty());
    for (client, secret) in [("oak-filter", "wrong"), ("nobody", secret.as_str()), ("Bad Id", secret.as_str())] {
        let error = accounts.exchange_client_credentials(client, secret, now()).await.unwrap_err();
        assert!(matches!(error, Error::SignInRefused), "{client}: {error}");
    }
    let revoke = haven_identity::domain::SystemCommand::Revoke { revoked_by: "user-admin".into() };
    fixture.app.system_command(&admin(), "oak-filter", revoke).await.unwrap();
    let error = accounts.exchange_client_credentials("oak-filter", &secret, now()).await.unwrap_err();
    assert!(matches!(error, Error::SignInRefused), "a revoked credential: {error}");
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verifier_refuses_every_forgery() {
    let fixture = Fixture::start().await;
    let accounts = accounts(&fixture);
    let verifier = accounts.tokens().verifier().clone();
    let at = now().0;
    // The same key ring, opened again, signs whatever claims a test wants.
    let ring = KeyRing::open(&fixture.dir.path().join("keys"), at).unwrap();
    let good = ring.sign(&claims(at)).unwrap();
    assert!(verifier.verify(&good, at).is_ok());
    let refused = |token: &str| verifier.verify(token, at).unwrap_err();

    let [header, payload, signature]: [&str; 3] = good.split('.').collect::<Vec<_>>().try_into().unwrap();
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    // `none` is no algorithm jsonwebtoken knows: the header does not even parse.
    assert_eq!(refused(&format!("{none_header}.{payload}.")), TokenError::Malformed, "alg none");
    let kid = ring.active().kid.clone();
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some(kid.clone());
    let public_as_secret = jsonwebtoken::EncodingKey::from_secret(&ring.active().public_key);
    let hs256 = jsonwebtoken::encode(&hs_header, &claims(at), &public_as_secret).unwrap();
    assert_eq!(refused(&hs256), TokenError::WrongAlgorithm, "HS256 keyed with the public key");
    let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&Claims { aup: 9, ..claims(at) }).unwrap());
    assert_eq!(refused(&format!("{header}.{forged_payload}.{signature}")), TokenError::BadSignature, "tampered");
    assert_eq!(refused(&format!("{header}.{payload}")), TokenError::Malformed);

    let expired = Claims { exp: at - 60, nbf: at - 660, iat: at - 660, ..claims(at) };
    assert_eq!(refused(&ring.sign(&expired).unwrap()), TokenError::Expired);
    let early = Claims { nbf: at + 120, exp: at + 600, ..claims(at) };
    assert_eq!(refused(&ring.sign(&early).unwrap()), TokenError::NotYetValid);
    let audience = Claims { aud: "someone-else".into(), ..claims(at) };
    assert_eq!(refused(&ring.sign(&audience).unwrap()), TokenError::WrongAudience);
    let issuer = Claims { iss: "evil".into(), ..claims(at) };
    assert_eq!(refused(&ring.sign(&issuer).unwrap()), TokenError::WrongIssuer);
    let too_long = Claims { exp: at + 3_600, ..claims(at) };
    assert_eq!(refused(&ring.sign(&too_long).unwrap()), TokenError::TooLong);

    let stranger_dir = tempfile::tempdir().unwrap();
    let stranger = KeyRing::open(stranger_dir.path(), at).unwrap();
    assert_eq!(refused(&stranger.sign(&claims(at)).unwrap()), TokenError::UnknownKey, "a key we never issued");
    let mut no_kid = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    no_kid.kid = None;
    let unsigned_kid =
        format!("{}.{payload}.{signature}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&no_kid).unwrap()));
    assert_eq!(refused(&unsigned_kid), TokenError::MissingKeyId);

    // Rotation: the old key's tokens verify until they expire, then its key retires.
    let rotated = accounts.tokens().rotate(at).unwrap();
    assert_ne!(rotated.kid, kid);
    assert!(verifier.verify(&good, at).is_ok(), "a token of the rotated-out key still verifies");
    assert_eq!(verifier.verify(&good, at + 16 * 60).unwrap_err(), TokenError::UnknownKey, "after its tokens expired");
    let jwks: serde_json::Value = serde_json::from_str(&accounts.tokens().jwks_json(at)).unwrap();
    let kids: Vec<_> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kids, vec![kid, rotated.kid.clone()]);
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    assert!(jwks.to_string().find("\"d\"").is_none(), "no private key material in the JWKS");
    fixture.stop().await;
}
