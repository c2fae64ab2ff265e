//! A real MLS client for tests, built on `openmls`: its own crypto provider and key store, a
//! basic credential naming a DID (or `did#device`), KeyPackages to publish, and (in the
//! conversation tests) groups it creates, joins and encrypts in.

use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::{
    BasicCredential, Ciphersuite, CredentialWithKey, KeyPackage, Lifetime, MlsGroup, MlsMessageOut,
    OpenMlsProvider as _,
};
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

/// The group configuration of test clients: ratchet tree in Welcomes and GroupInfos (so a
/// joiner needs nothing else), ciphertext out, both framings in (external commits are public).
fn group_config(suite: Ciphersuite) -> openmls::prelude::MlsGroupCreateConfig {
    openmls::prelude::MlsGroupCreateConfig::builder()
        .ciphersuite(suite)
        .use_ratchet_tree_extension(true)
        .wire_format_policy(openmls::prelude::MIXED_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .build()
}

/// Zero bytes after `message` up to the smallest `sendMessage` bucket that holds it.
#[must_use]
pub fn pad(mut message: Vec<u8>) -> Vec<u8> {
    let bucket = [512, 1024, 2048, 4096, 8192]
        .into_iter()
        .find(|size| *size >= message.len())
        .unwrap_or_else(|| message.len().div_ceil(8192) * 8192);
    message.resize(bucket, 0);
    message
}

/// What a member made of a message from the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    Application(Vec<u8>),
    /// A commit, merged: the group is at the next epoch.
    Commit,
}

impl MlsClient {
    /// A new group with this client as its only member, at epoch 0.
    #[must_use]
    pub fn create_group(&self, group_id: &[u8]) -> MlsGroup {
        MlsGroup::new_with_group_id(
            &self.provider,
            &self.signer,
            &group_config(self.suite),
            openmls::prelude::GroupId::from_slice(group_id),
            self.credential.clone(),
        )
        .unwrap()
    }

    /// A commit adding the owners of `key_packages` and their Welcome (both `MLSMessage`
    /// bytes). The commit stays pending until [`Self::merge`].
    #[must_use]
    pub fn add(&self, group: &mut MlsGroup, key_packages: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
        let (commit, welcome, _) = self.add_with_group_info(group, key_packages);
        (commit, welcome)
    }

    /// [`Self::add`], plus the GroupInfo of the epoch the commit starts.
    #[must_use]
    pub fn add_with_group_info(&self, group: &mut MlsGroup, key_packages: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        use openmls::prelude::tls_codec::Deserialize as _;
        let key_packages: Vec<KeyPackage> = key_packages
            .iter()
            .map(|bytes| {
                let kp_in = match openmls::prelude::MlsMessageIn::tls_deserialize_exact(bytes).map(|m| m.extract()) {
                    Ok(openmls::prelude::MlsMessageBodyIn::KeyPackage(kp)) => kp,
                    _ => openmls::prelude::KeyPackageIn::tls_deserialize_exact(bytes).unwrap(),
                };
                kp_in.validate(self.provider.crypto(), openmls::prelude::ProtocolVersion::Mls10).unwrap()
            })
            .collect();
        let (commit, welcome, info) = group.add_members(&self.provider, &self.signer, &key_packages).unwrap();
        let info = MlsMessageOut::from(info.expect("the ratchet tree extension makes a GroupInfo"));
        (commit.to_bytes().unwrap(), welcome.to_bytes().unwrap(), info.to_bytes().unwrap())
    }

    /// A commit removing every leaf whose credential names `identity`.
    #[must_use]
    pub fn remove(&self, group: &mut MlsGroup, identity: &str) -> Vec<u8> {
        let leaves: Vec<_> = group
            .members()
            .filter(|m| m.credential.serialized_content() == identity.as_bytes())
            .map(|m| m.index)
            .collect();
        assert!(!leaves.is_empty(), "{identity} is not in the group");
        let (commit, _, _) = group.remove_members(&self.provider, &self.signer, &leaves).unwrap();
        commit.to_bytes().unwrap()
    }

    /// A commit that only refreshes this member's leaf.
    #[must_use]
    pub fn self_update(&self, group: &mut MlsGroup) -> Vec<u8> {
        let bundle =
            group.self_update(&self.provider, &self.signer, openmls::prelude::LeafNodeParameters::default()).unwrap();
        bundle.into_commit().to_bytes().unwrap()
    }

    /// Applies this member's pending commit once the server accepted it.
    pub fn merge(&self, group: &mut MlsGroup) {
        group.merge_pending_commit(&self.provider).unwrap();
    }

    /// Drops a pending commit the server refused.
    pub fn discard(&self, group: &mut MlsGroup) {
        group.clear_pending_commit(self.provider.storage()).unwrap();
    }

    /// Joins with a Welcome (`MLSMessage` bytes).
    #[must_use]
    pub fn join(&self, welcome: &[u8]) -> MlsGroup {
        use openmls::prelude::tls_codec::Deserialize as _;
        let message = openmls::prelude::MlsMessageIn::tls_deserialize_exact(welcome).unwrap();
        let openmls::prelude::MlsMessageBodyIn::Welcome(welcome) = message.extract() else {
            panic!("not a Welcome");
        };
        let config = group_config(self.suite).join_config().clone();
        openmls::prelude::StagedWelcome::new_from_welcome(&self.provider, &config, welcome, None)
            .unwrap()
            .into_group(&self.provider)
            .unwrap()
    }

    /// This member's GroupInfo (with the ratchet tree), as `MLSMessage` bytes.
    #[must_use]
    pub fn group_info(&self, group: &MlsGroup) -> Vec<u8> {
        group.export_group_info(self.provider.crypto(), &self.signer, true).unwrap().to_bytes().unwrap()
    }

    /// Joins (again) by an external commit built from a GroupInfo. Returns the group, the
    /// commit and the GroupInfo of the new epoch.
    #[must_use]
    pub fn join_externally(&self, group_info: &[u8]) -> (MlsGroup, Vec<u8>, Vec<u8>) {
        use openmls::prelude::tls_codec::Deserialize as _;
        let message = openmls::prelude::MlsMessageIn::tls_deserialize_exact(group_info).unwrap();
        let openmls::prelude::MlsMessageBodyIn::GroupInfo(info) = message.extract() else {
            panic!("not a GroupInfo");
        };
        let config = group_config(self.suite).join_config().clone();
        #[allow(deprecated, reason = "the builder needs more ceremony for the same result")]
        let (group, commit, _) = MlsGroup::join_by_external_commit(
            &self.provider,
            &self.signer,
            None,
            info,
            &config,
            None,
            None,
            &[],
            self.credential.clone(),
        )
        .unwrap();
        let info = self.group_info(&group);
        (group, commit.to_bytes().unwrap(), info)
    }

    /// An application message, padded to its `sendMessage` bucket.
    #[must_use]
    pub fn encrypt(&self, group: &mut MlsGroup, plaintext: &[u8]) -> Vec<u8> {
        let message = group.create_message(&self.provider, &self.signer, plaintext).unwrap();
        pad(message.to_bytes().unwrap())
    }

    /// Reads a message from the log (padding allowed), merging commits.
    pub fn receive(&self, group: &mut MlsGroup, bytes: &[u8]) -> Received {
        use openmls::prelude::tls_codec::Deserialize as _;
        let mut rest = bytes;
        let message = openmls::prelude::MlsMessageIn::tls_deserialize(&mut rest).unwrap();
        let protocol = message.try_into_protocol_message().unwrap();
        let processed = group.process_message(&self.provider, protocol).unwrap();
        match processed.into_content() {
            openmls::prelude::ProcessedMessageContent::ApplicationMessage(app) => {
                Received::Application(app.into_bytes())
            }
            openmls::prelude::ProcessedMessageContent::StagedCommitMessage(staged) => {
                group.merge_staged_commit(&self.provider, *staged).unwrap();
                Received::Commit
            }
            other => panic!("unexpected message content: {other:?}"),
        }
    }
}
