//! Files built byte by byte from spec sections 3.2 to 3.5, for the vectors the reference writer
//! refuses to make: a metadata encoding that breaks a decoding rule (3.3), a recorded length
//! the plaintext does not have (3.6 step 5), and zstd payloads other than the one frame the
//! writer produces (3.5): several frames, skippable frames, a `Dictionary_ID` field, a content
//! checksum, and the damaged frames a reader reports as decompression.
//!
//! This is a second writer, written from the spec alone (it shares only AES-GCM and the key
//! schedule of section 2.3 with the reference): the generator checks that it gives the
//! reference writer's bytes for an ordinary file before it uses it.

use e2ee_backup_format::header::MAGIC;
use e2ee_backup_format::{ChunkCipher, RingGcm};
use e2ee_backup_kdf::BackupKey;
use e2ee_backup_kdf::schedule::{FileKeys, KeyId};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Everything a file is made of.
pub(super) struct Parts<'a> {
    pub key: &'a BackupKey,
    pub salt: [u8; 32],
    /// The compression byte of the header (`00` none, `01` zstd).
    pub compression: u8,
    pub chunk_size_log2: u8,
    /// `M`, the metadata encoding, as given (see [`metadata`]).
    pub metadata: &'a [u8],
    /// `P`, the payload, as given: cut into chunks and sealed.
    pub payload: &'a [u8],
}

/// The file of section 3.5, steps 4 to 8, from its parts.
pub(super) fn build(parts: &Parts<'_>) -> Vec<u8> {
    let keys = FileKeys::derive(parts.key, &parts.salt);
    let mut header = Vec::with_capacity(96);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&[1, parts.compression, parts.chunk_size_log2, 0]);
    header.extend_from_slice(&KeyId::of(parts.key).0);
    header.extend_from_slice(&parts.salt);
    let metadata_len = u32::try_from(parts.metadata.len() + 16).expect("a small metadata block");
    header.extend_from_slice(&metadata_len.to_be_bytes());
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&keys.header_mac_key)
        .expect("HMAC takes keys of any length");
    mac.update(&header);
    header.extend_from_slice(&mac.finalize().into_bytes());

    let mut file = header.clone();
    let mut block = parts.metadata.to_vec();
    let tag = RingGcm::new(&keys.metadata_key).seal(&[0; 12], &header, &mut block);
    file.extend_from_slice(&block);
    file.extend_from_slice(&tag);

    let payload_cipher = RingGcm::new(&keys.payload_key);
    let chunk_size = 1usize << parts.chunk_size_log2;
    let chunks: Vec<&[u8]> = if parts.payload.is_empty() {
        vec![&[]]
    } else {
        parts.payload.chunks(chunk_size).collect()
    };
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let index = u32::try_from(i).expect("few chunks");
        let length = u32::try_from(chunk.len()).expect("a chunk") | if last { 1 << 31 } else { 0 };
        let mut record_header = [0u8; 16];
        record_header[..8].copy_from_slice(&parts.salt[..8]);
        record_header[8..12].copy_from_slice(&index.to_be_bytes());
        record_header[12..].copy_from_slice(&length.to_be_bytes());
        let mut nonce = keys.nonce_base;
        for (n, b) in nonce[7..11].iter_mut().zip(index.to_be_bytes()) {
            *n ^= b;
        }
        nonce[11] ^= u8::from(last);
        let mut text = chunk.to_vec();
        let tag = payload_cipher.seal(&nonce, &record_header, &mut text);
        file.extend_from_slice(&record_header);
        file.extend_from_slice(&text);
        file.extend_from_slice(&tag);
    }
    file
}

/// `M` of section 3.3 with the fields as given, in the order given and unchecked (names and
/// values are bytes, so they may break any rule): `field_count` is `count`, which may differ
/// from the number of fields written.
pub(super) fn metadata(
    created_at: u64,
    plaintext_len: Option<u64>,
    count: u16,
    fields: &[(&[u8], &[u8])],
) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&created_at.to_be_bytes());
    m.extend_from_slice(&plaintext_len.unwrap_or(u64::MAX).to_be_bytes());
    m.extend_from_slice(&count.to_be_bytes());
    for (name, value) in fields {
        m.push(u8::try_from(name.len()).expect("a short name"));
        m.extend_from_slice(name);
        m.extend_from_slice(&u16::try_from(value.len()).expect("a short value").to_be_bytes());
        m.extend_from_slice(value);
    }
    m
}

/// What a zstd frame of [`frame`] declares in its header (RFC 8878, section 3.1.1.1).
#[derive(Clone, Copy, Default)]
pub(super) struct FrameHeader {
    /// `Window_Log` (10 to 41): the window is `2^window_log` bytes (mantissa 0).
    pub window_log: u8,
    /// A one-byte `Dictionary_ID` field with this value.
    pub dictionary_id: Option<u8>,
    /// A `Content_Checksum` field with this value (the right one is the low 32 bits of the
    /// content's XXH64).
    pub checksum: Option<u32>,
}

/// A Zstandard frame holding `content` in one raw block: a header that is not single-segment
/// (so it carries a `Window_Descriptor` and no `Frame_Content_Size`), the block, and the
/// checksum if asked.
pub(super) fn frame(content: &[u8], header: FrameHeader) -> Vec<u8> {
    let mut out = vec![0x28, 0xB5, 0x2F, 0xFD];
    let dictionary_flag = u8::from(header.dictionary_id.is_some());
    let checksum_flag = u8::from(header.checksum.is_some()) << 2;
    out.push(checksum_flag | dictionary_flag);
    out.push((header.window_log - 10) << 3);
    out.extend(header.dictionary_id);
    let block = u32::try_from(content.len()).expect("a small block") << 3 | 1; // raw, last
    out.extend_from_slice(&block.to_le_bytes()[..3]);
    out.extend_from_slice(content);
    if let Some(checksum) = header.checksum {
        out.extend_from_slice(&checksum.to_le_bytes());
    }
    out
}

/// A skippable frame (RFC 8878, section 3.1.2) holding `data`.
pub(super) fn skippable(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x50, 0x2A, 0x4D, 0x18];
    out.extend_from_slice(&u32::try_from(data.len()).expect("small").to_le_bytes());
    out.extend_from_slice(data);
    out
}
