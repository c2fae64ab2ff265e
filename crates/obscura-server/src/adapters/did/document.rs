//! Reading a DID document: the subject must be the DID we asked for (a host cannot answer for
//! someone else), and the `#atproto` verification method is the signing key.

use serde::Deserialize;

use crate::domain::atproto_key::{AtprotoKey, KeyAlg};
use crate::domain::did::Did;
use crate::ports::did::ResolveError;

#[derive(Deserialize)]
struct Document {
    id: String,
    #[serde(default, rename = "verificationMethod")]
    verification_methods: Vec<VerificationMethod>,
}

#[derive(Deserialize)]
struct VerificationMethod {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "publicKeyMultibase")]
    public_key_multibase: Option<String>,
}

fn invalid(reason: impl Into<String>) -> ResolveError {
    ResolveError::Invalid(reason.into())
}

/// The ATProto signing key published in `body`, the document of `did`.
pub fn signing_key(did: &Did, body: &[u8]) -> Result<AtprotoKey, ResolveError> {
    let document: Document = serde_json::from_slice(body).map_err(|e| invalid(format!("not a DID document: {e}")))?;
    if document.id != did.as_str() {
        return Err(invalid("document id is not the requested DID"));
    }
    let full_id = format!("{did}#atproto");
    let method = document
        .verification_methods
        .iter()
        .find(|m| m.id == "#atproto" || m.id == full_id)
        .ok_or_else(|| invalid("no #atproto verification method"))?;
    let multibase = method.public_key_multibase.as_deref().ok_or_else(|| invalid("no publicKeyMultibase"))?;
    let key = match method.kind.as_str() {
        "Multikey" => AtprotoKey::from_multikey(multibase),
        "EcdsaSecp256k1VerificationKey2019" => AtprotoKey::from_legacy(KeyAlg::Es256k, multibase),
        "EcdsaSecp256r1VerificationKey2019" => AtprotoKey::from_legacy(KeyAlg::Es256, multibase),
        _ => return Err(invalid("unsupported verification method type")),
    };
    key.map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn did() -> Did {
        Did::parse("did:plc:ewvi7nxzyoun6zhxrhs64oiz").unwrap()
    }

    fn multikey() -> String {
        let key = k256::ecdsa::SigningKey::from_slice(&[3; 32]).unwrap();
        AtprotoKey::K256(*key.verifying_key()).to_multikey()
    }

    #[test]
    fn finds_the_atproto_key_in_either_id_form() {
        for id in ["#atproto".to_owned(), format!("{}#atproto", did())] {
            let doc = json!({"id": did(), "verificationMethod": [
                {"id": "#other", "type": "Multikey", "publicKeyMultibase": "zzz"},
                {"id": id, "type": "Multikey", "controller": did(), "publicKeyMultibase": multikey()},
            ]});
            let key = signing_key(&did(), doc.to_string().as_bytes()).unwrap();
            assert_eq!(key.to_multikey(), multikey());
        }
    }

    #[test]
    fn refuses_documents_about_someone_else_or_without_a_key() {
        let other = json!({"id": "did:plc:someoneelse", "verificationMethod": [
            {"id": "#atproto", "type": "Multikey", "publicKeyMultibase": multikey()}]});
        assert!(matches!(signing_key(&did(), other.to_string().as_bytes()), Err(ResolveError::Invalid(_))));
        let keyless = json!({"id": did()});
        assert!(matches!(signing_key(&did(), keyless.to_string().as_bytes()), Err(ResolveError::Invalid(_))));
        assert!(matches!(signing_key(&did(), b"<html>"), Err(ResolveError::Invalid(_))));
    }
}
