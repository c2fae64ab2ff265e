//! Every way a caller token can fail, and the ones that pass: ES256K and ES256 tokens checked
//! against DID documents from the fake PLC directory.

use obscura_testkit::atproto::{dev_token, now_secs, AtprotoIdentity, Curve};
use obscura_testkit::xrpc::{MlsWorld, XrpcClient, SERVICE_DID};
use reqwest::StatusCode;
use serde_json::{json, Value};

const STATUS: &str = "blue.catbird.mls.getKeyPackageStatus";

async fn call(client: &XrpcClient, token: Option<&str>) -> (StatusCode, Value) {
    client.query_with_token(STATUS, &[], token).await
}

fn error_name(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

async fn assert_refused(client: &XrpcClient, token: &str, name: &str) {
    let (status, body) = call(client, Some(token)).await;
    assert_eq!((status, error_name(&body)), (StatusCode::UNAUTHORIZED, name), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "the message names the problem: {body}");
}

#[tokio::test]
async fn tokens_signed_with_es256k_and_es256_keys_are_accepted() {
    let world = MlsWorld::start().await;
    for curve in [Curve::K256, Curve::P256] {
        let user = world.user_with(curve);
        let (status, body) = user.query(STATUS, &[]).await;
        assert_eq!(status, StatusCode::OK, "{curve:?}: {body}");
        assert_eq!(body["available"], 0);
    }
}

#[tokio::test]
async fn the_audience_may_name_our_service_entry() {
    let world = MlsWorld::start().await;
    let user = world.user();
    let mut claims = user.identity.claims(&format!("{SERVICE_DID}#atproto_mls"), STATUS);
    assert_eq!(call(&user, Some(&user.identity.sign_claims(&claims))).await.0, StatusCode::OK);
    claims["jti"] = json!("another");
    claims["aud"] = json!(format!("{SERVICE_DID}#atproto_labeler"));
    assert_refused(&user, &user.identity.sign_claims(&claims), "BadJwtAudience").await;
}

#[tokio::test]
async fn missing_and_malformed_tokens_are_refused() {
    let world = MlsWorld::start().await;
    let user = world.user();
    let (status, body) = call(&user, None).await;
    assert_eq!((status, error_name(&body)), (StatusCode::UNAUTHORIZED, "AuthMissing"));
    for garbage in ["garbage", "a.b.c", "a.b", "eyJhbGciOiJFUzI1NksifQ.e30.AAAA"] {
        assert_refused(&user, garbage, "BadJwt").await;
    }
    let none = user.identity.sign_token(&json!({"alg": "none"}), &user.identity.claims(SERVICE_DID, STATUS), false);
    assert_refused(&user, &none, "BadJwt").await;
    let session = user.identity.sign_token(
        &json!({"alg": user.identity.alg(), "typ": "at+jwt"}),
        &user.identity.claims(SERVICE_DID, STATUS),
        false,
    );
    assert_refused(&user, &session, "BadJwt").await;
    let mut claims = user.identity.claims(SERVICE_DID, STATUS);
    claims["iss"] = json!("not-a-did");
    assert_refused(&user, &user.identity.sign_claims(&claims), "BadJwt").await;
}

#[tokio::test]
async fn tokens_for_another_audience_or_method_are_refused() {
    let world = MlsWorld::start().await;
    let user = world.user();
    assert_refused(&user, &user.identity.service_token("did:web:other.example", STATUS), "BadJwtAudience").await;
    let other_method = user.identity.service_token(SERVICE_DID, "blue.catbird.mls.sendMessage");
    assert_refused(&user, &other_method, "BadJwtLexiconMethod").await;
    let mut claims = user.identity.claims(SERVICE_DID, STATUS);
    claims.as_object_mut().unwrap().remove("lxm");
    assert_refused(&user, &user.identity.sign_claims(&claims), "BadJwtLexiconMethod").await;
}

#[tokio::test]
async fn expired_old_future_and_long_lived_tokens_are_refused() {
    let world = MlsWorld::start().await;
    let user = world.user();
    let now = now_secs();
    let with = |changes: Value| {
        let mut claims = user.identity.claims(SERVICE_DID, STATUS);
        for (k, v) in changes.as_object().unwrap() {
            claims[k] = v.clone();
        }
        user.identity.sign_claims(&claims)
    };
    assert_refused(&user, &with(json!({"exp": now - 120, "iat": now - 180})), "JwtExpired").await;
    assert_refused(&user, &with(json!({"iat": now - 3600})), "JwtExpired").await;
    assert_refused(&user, &with(json!({"iat": now + 600})), "BadJwt").await;
    assert_refused(&user, &with(json!({"exp": now + 86_400})), "BadJwt").await;
    // Within the leeway is fine.
    assert_eq!(call(&user, Some(&with(json!({"exp": now - 5})))).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_service_token_not_valid_yet_is_refused() {
    let world = MlsWorld::start().await;
    let user = world.user();
    let now = now_secs();
    let mut claims = user.identity.claims(SERVICE_DID, STATUS);
    claims["nbf"] = json!(now + 600);
    assert_refused(&user, &user.identity.sign_claims(&claims), "BadJwt").await;
    claims["nbf"] = json!(now + 5);
    claims["jti"] = json!("within-the-leeway");
    assert_eq!(call(&user, Some(&user.identity.sign_claims(&claims))).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_replayed_jti_and_a_missing_jti_are_refused() {
    let world = MlsWorld::start().await;
    let user = world.user();
    let token = user.identity.service_token(SERVICE_DID, STATUS);
    assert_eq!(call(&user, Some(&token)).await.0, StatusCode::OK);
    assert_refused(&user, &token, "JwtReplayed").await;
    let mut claims = user.identity.claims(SERVICE_DID, STATUS);
    claims.as_object_mut().unwrap().remove("jti");
    assert_refused(&user, &user.identity.sign_claims(&claims), "BadJwt").await;
}

#[tokio::test]
async fn a_token_refused_for_its_signature_does_not_burn_its_jti() {
    let world = MlsWorld::start().await;
    let user = world.user();
    let claims = user.identity.claims(SERVICE_DID, STATUS);
    let forger = AtprotoIdentity::generate(Curve::K256);
    assert_refused(&user, &forger.sign_claims(&claims), "BadJwtSignature").await;
    assert_eq!(call(&user, Some(&user.identity.sign_claims(&claims))).await.0, StatusCode::OK);
}

#[tokio::test]
async fn bad_signatures_are_refused_including_high_s_ones() {
    let world = MlsWorld::start().await;
    for curve in [Curve::K256, Curve::P256] {
        let user = world.user_with(curve);
        let forger = AtprotoIdentity::with_did(user.did().to_owned(), curve);
        assert_refused(&user, &forger.service_token(SERVICE_DID, STATUS), "BadJwtSignature").await;
        let header = json!({"alg": user.identity.alg()});
        let high_s = user.identity.sign_token(&header, &user.identity.claims(SERVICE_DID, STATUS), true);
        assert_refused(&user, &high_s, "BadJwtSignature").await;
        // The right key under the other algorithm's name.
        let other_alg = json!({"alg": if curve == Curve::K256 { "ES256" } else { "ES256K" }});
        let mislabelled = user.identity.sign_token(&other_alg, &user.identity.claims(SERVICE_DID, STATUS), false);
        assert_refused(&user, &mislabelled, "BadJwtSignature").await;
    }
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_by_one_re_resolution() {
    let world = MlsWorld::with_flags(&[("--did-refresh-min-interval-secs", "1")]).await;
    let user = world.user();
    assert_eq!(user.query(STATUS, &[]).await.0, StatusCode::OK);
    let fetches = world.plc.requests();
    assert_eq!(user.query(STATUS, &[]).await.0, StatusCode::OK);
    assert_eq!(world.plc.requests(), fetches, "the document is cached");
    let rotated = user.identity.rotated();
    world.plc.publish(&rotated.did, &rotated.multikey());
    let client = world.client(rotated);
    // Refused while the cached document is younger than the refresh interval (each refusal
    // costs no fetch), then accepted after exactly one re-resolution.
    let accepted = obscura_testkit::eventually(crate::STEP, || {
        let client = client.clone();
        async move { client.query(STATUS, &[]).await.0 == StatusCode::OK }
    })
    .await;
    assert!(accepted, "the rotated key was never accepted");
    assert_eq!(world.plc.requests(), fetches + 1, "exactly one re-resolution");
    assert_eq!(user.query(STATUS, &[]).await.0, StatusCode::UNAUTHORIZED, "the old key no longer works");
}

#[tokio::test]
async fn callers_without_a_usable_did_document_are_refused() {
    let world = MlsWorld::start().await;
    let unknown = world.client(AtprotoIdentity::generate(Curve::K256));
    assert_refused(&unknown, &unknown.identity.service_token(SERVICE_DID, STATUS), "InvalidIssuer").await;
    let keyless = AtprotoIdentity::generate(Curve::K256);
    world.plc.publish_document(&keyless.did, json!({"id": keyless.did}));
    let keyless = world.client(keyless);
    assert_refused(&keyless, &keyless.identity.service_token(SERVICE_DID, STATUS), "InvalidIssuer").await;
    // A did:web pointing at a private address is never fetched.
    let internal = world.client(AtprotoIdentity::with_did("did:web:127.0.0.1".into(), Curve::K256));
    assert_refused(&internal, &internal.identity.service_token(SERVICE_DID, STATUS), "InvalidIssuer").await;
    let localhost = world.client(AtprotoIdentity::with_did("did:web:localhost".into(), Curve::K256));
    assert_refused(&localhost, &localhost.identity.service_token(SERVICE_DID, STATUS), "InvalidIssuer").await;
}

#[tokio::test]
async fn hs256_tokens_are_accepted_only_in_development_mode() {
    let secret = "a development secret of some length";
    let claims = |did: &str| {
        let now = now_secs();
        json!({"iss": did, "aud": SERVICE_DID, "lxm": STATUS, "iat": now, "exp": now + 60,
               "jti": format!("{:032x}", rand::random::<u128>())})
    };
    let production = MlsWorld::start().await;
    let user = production.user();
    assert_refused(&user, &dev_token(secret, &claims(user.did())), "BadJwt").await;

    // The secret alone (the seed's generic `JWT_SECRET`) does not switch development mode on.
    let secret_only = MlsWorld::with_flags(&[("--dev-jwt-secret", secret)]).await;
    let user = secret_only.client(AtprotoIdentity::generate(Curve::K256));
    assert_refused(&user, &dev_token(secret, &claims(user.did())), "BadJwt").await;

    let development = MlsWorld::with_flags(&[("--dev-jwt-secret", secret), ("--dev-mode", "true")]).await;
    // No DID document is needed in development mode.
    let user = development.client(AtprotoIdentity::generate(Curve::K256));
    assert_eq!(call(&user, Some(&dev_token(secret, &claims(user.did())))).await.0, StatusCode::OK);
    assert_refused(&user, &dev_token("another secret entirely", &claims(user.did())), "BadJwtSignature").await;
    // The ES256K path still works beside it.
    assert_eq!(development.user().query(STATUS, &[]).await.0, StatusCode::OK);
}

#[tokio::test]
async fn lxm_and_jti_may_be_made_optional_but_are_checked_when_present() {
    let world = MlsWorld::with_flags(&[("--enforce-lxm", "false"), ("--enforce-jti", "false")]).await;
    let user = world.user();
    let mut claims = user.identity.claims(SERVICE_DID, STATUS);
    claims.as_object_mut().unwrap().remove("lxm");
    claims.as_object_mut().unwrap().remove("jti");
    let token = user.identity.sign_claims(&claims);
    assert_eq!(call(&user, Some(&token)).await.0, StatusCode::OK);
    assert_eq!(call(&user, Some(&token)).await.0, StatusCode::OK, "without a jti there is nothing to replay");
    let other_method = user.identity.service_token(SERVICE_DID, "blue.catbird.mls.sendMessage");
    assert_refused(&user, &other_method, "BadJwtLexiconMethod").await;
    let token = user.identity.service_token(SERVICE_DID, STATUS);
    assert_eq!(call(&user, Some(&token)).await.0, StatusCode::OK);
    assert_refused(&user, &token, "JwtReplayed").await;
}
