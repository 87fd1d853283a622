//! Mutual TLS between replicas (spec section 7.7.1), optional: TLS 1.3 with raw public keys
//! (RFC 7250) instead of certificates. Every replica of a fleet holds the same Ed25519 key,
//! derived from the fleet secrets (`HsmSecrets::peer_tls_seed`), presents it, and accepts a
//! peer only if it presents that key too. Strangers on the replicas' network then cannot send a
//! single byte of a peer message, nor read one; the peer seal (section 7.7) still binds each
//! message to its direction, sender, receiver, time and request inside the tunnel.

use std::sync::Arc;

use rustls::client::AlwaysResolvesClientRawPublicKeys;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls13_signature_with_raw_key};
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, SubjectPublicKeyInfoDer,
    UnixTime,
};
use rustls::server::AlwaysResolvesServerRawPublicKeys;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, Error,
    PeerIncompatible, ServerConfig, SignatureScheme,
};
use zeroize::Zeroizing;

/// DER prefix of an Ed25519 `SubjectPublicKeyInfo` (RFC 8410): the 32-byte key follows.
const SPKI_PREFIX: [u8; 12] =
    [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
/// DER prefix of an Ed25519 PKCS#8 v1 private key (RFC 8410): the 32-byte seed follows.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The TLS configurations of one fleet's replicas: what a replica serves its peer port with,
/// and what it (or an operator's tool) connects to a peer with.
#[derive(Clone)]
pub struct PeerTls {
    /// For the peer listener.
    pub server: Arc<ServerConfig>,
    /// For connections to a peer.
    pub client: Arc<ClientConfig>,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTls").finish_non_exhaustive()
    }
}

impl PeerTls {
    /// The configurations for the fleet whose peer TLS seed is `seed` (32 bytes, from the
    /// fleet secrets).
    pub fn new(seed: &[u8; 32]) -> Result<Self, Error> {
        let public = ed25519_dalek::SigningKey::from_bytes(seed).verifying_key();
        let mut spki = SPKI_PREFIX.to_vec();
        spki.extend_from_slice(public.as_bytes());
        let mut pkcs8 = Zeroizing::new(PKCS8_PREFIX.to_vec());
        pkcs8.extend_from_slice(seed);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.to_vec()));
        let signing = provider.key_provider.load_private_key(key)?;
        let certified =
            Arc::new(CertifiedKey::new(vec![CertificateDer::from(spki.clone())], signing));
        let pinned =
            Arc::new(Pinned { spki, algorithms: provider.signature_verification_algorithms });
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(pinned.clone())
            .with_cert_resolver(Arc::new(AlwaysResolvesServerRawPublicKeys::new(
                certified.clone(),
            )));
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(pinned)
            .with_client_cert_resolver(Arc::new(AlwaysResolvesClientRawPublicKeys::new(certified)));
        Ok(Self { server: Arc::new(server), client: Arc::new(client) })
    }
}

/// Accepts exactly one raw public key: the fleet's.
#[derive(Debug)]
struct Pinned {
    spki: Vec<u8>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl Pinned {
    fn check(&self, presented: &CertificateDer<'_>) -> Result<(), Error> {
        if presented.as_ref() == self.spki.as_slice() {
            Ok(())
        } else {
            Err(Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
        }
    }

    fn signature(
        &self,
        message: &[u8],
        key: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.check(key)?;
        let spki = SubjectPublicKeyInfoDer::from(key.as_ref());
        verify_tls13_signature_with_raw_key(message, &spki, dss, &self.algorithms)
    }
}

/// The signature checks both verifier traits share: TLS 1.3 only, raw public keys only.
macro_rules! raw_key_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            _message: &[u8],
            _cert: &CertificateDer<'_>,
            _dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            Err(Error::PeerIncompatible(PeerIncompatible::Tls13RequiredForQuic))
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }

        fn requires_raw_public_keys(&self) -> bool {
            true
        }
    };
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.check(end_entity).map(|()| ServerCertVerified::assertion())
    }

    raw_key_signatures!();
}

impl ClientCertVerifier for Pinned {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.check(end_entity).map(|()| ClientCertVerified::assertion())
    }

    raw_key_signatures!();
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    use super::*;

    /// A handshake between `server` and `client` over an in-memory pipe, then one byte each
    /// way; whether both ends got through.
    async fn handshake(server: &PeerTls, client: &PeerTls) -> bool {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let acceptor = TlsAcceptor::from(server.server.clone());
        let connector = TlsConnector::from(client.client.clone());
        let name = ServerName::try_from("peer.invalid").unwrap();
        let serving = tokio::spawn(async move {
            let mut tls = acceptor.accept(a).await.ok()?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.ok()?;
            tls.write_all(&byte).await.ok()?;
            tls.flush().await.ok()
        });
        let connected = async {
            let mut tls = connector.connect(name, b).await.ok()?;
            tls.write_all(&[7]).await.ok()?;
            tls.flush().await.ok()?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.ok()?;
            (byte == [7]).then_some(())
        }
        .await;
        let served = serving.await.unwrap();
        connected.is_some() && served.is_some()
    }

    #[tokio::test]
    async fn only_holders_of_the_fleet_key_connect() {
        let fleet = PeerTls::new(&[1; 32]).unwrap();
        let again = PeerTls::new(&[1; 32]).unwrap();
        let stranger = PeerTls::new(&[2; 32]).unwrap();
        assert!(handshake(&fleet, &again).await, "two replicas of one fleet connect");
        assert!(!handshake(&fleet, &stranger).await, "a stranger's client is refused");
        assert!(!handshake(&stranger, &fleet).await, "a stranger's server is refused");
    }
}
