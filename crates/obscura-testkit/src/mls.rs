//! A real MLS client for tests, built on `openmls`: its own crypto provider and key store, a
//! basic credential naming a DID (or `did#device`), KeyPackages to publish, and (in the
//! conversation tests) groups it creates, joins and encrypts in.

use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::{BasicCredential, Ciphersuite, CredentialWithKey, KeyPackage, Lifetime, MlsMessageOut};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;

/// The suite tests use unless they say otherwise.
pub const SUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
/// Its lexicon name.
pub const SUITE_NAME: &str = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519";

/// One MLS client (one device).
pub struct MlsClient {
    pub identity: String,
    pub provider: OpenMlsRustCrypto,
    pub signer: SignatureKeyPair,
    pub credential: CredentialWithKey,
    pub suite: Ciphersuite,
}

impl MlsClient {
    /// A client whose credential identity is `identity` (`did` or `did#device`).
    #[must_use]
    pub fn new(identity: &str) -> Self {
        Self::with_suite(identity, SUITE)
    }

    #[must_use]
    pub fn with_suite(identity: &str, suite: Ciphersuite) -> Self {
        let provider = OpenMlsRustCrypto::default();
        let signer = SignatureKeyPair::new(suite.signature_algorithm()).unwrap();
        signer.store(openmls::prelude::OpenMlsProvider::storage(&provider)).unwrap();
        let credential = CredentialWithKey {
            credential: BasicCredential::new(identity.as_bytes().to_vec()).into(),
            signature_key: signer.public().into(),
        };
        Self { identity: identity.to_owned(), provider, signer, credential, suite }
    }

    /// A fresh single-use KeyPackage (kept in this client's store), TLS-encoded.
    #[must_use]
    pub fn key_package(&self) -> Vec<u8> {
        self.build_key_package(false, None)
    }

    /// A fresh last-resort KeyPackage, TLS-encoded.
    #[must_use]
    pub fn last_resort_key_package(&self) -> Vec<u8> {
        self.build_key_package(true, None)
    }

    /// A KeyPackage valid for `seconds` from now.
    #[must_use]
    pub fn key_package_with_lifetime(&self, seconds: u64) -> Vec<u8> {
        self.build_key_package(false, Some(Lifetime::new(seconds)))
    }

    /// The same KeyPackage wrapped in an MLSMessage (wire format `mls_key_package`).
    #[must_use]
    pub fn wrapped(key_package: &[u8]) -> Vec<u8> {
        use openmls::prelude::tls_codec::Deserialize as _;
        let kp = openmls::prelude::KeyPackageIn::tls_deserialize_exact(key_package).unwrap();
        let kp: KeyPackage =
            kp.validate(&openmls_rust_crypto::RustCrypto::default(), openmls::prelude::ProtocolVersion::Mls10).unwrap();
        MlsMessageOut::from(kp).to_bytes().unwrap()
    }

    fn build_key_package(&self, last_resort: bool, lifetime: Option<Lifetime>) -> Vec<u8> {
        let mut builder = KeyPackage::builder();
        if last_resort {
            // RFC 9420 §13.4: the leaf must list every extension the package carries.
            let capabilities = openmls::prelude::Capabilities::new(
                None,
                None,
                Some(&[openmls::prelude::ExtensionType::LastResort]),
                None,
                None,
            );
            builder = builder.mark_as_last_resort().leaf_node_capabilities(capabilities);
        }
        if let Some(lifetime) = lifetime {
            builder = builder.key_package_lifetime(lifetime);
        }
        let bundle = builder.build(self.suite, &self.provider, &self.signer, self.credential.clone()).unwrap();
        bundle.key_package().tls_serialize_detached().unwrap()
    }
}
