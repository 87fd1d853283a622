//! Account and fleet identifiers (spec sections 4.3 and 4.4): each is 1 to 64 bytes, the one
//! length rule that envelopes, fleet bundles, records, pins and the client all apply. Each
//! caller reports a violation in its own error vocabulary; the rule itself lives here.

/// The shortest identifier, in bytes.
pub const MIN_ID_LEN: usize = 1;
/// The longest identifier, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// Whether `id` has an identifier's length: 1 to 64 bytes.
pub fn valid_len(id: &[u8]) -> bool {
    (MIN_ID_LEN..=MAX_ID_LEN).contains(&id.len())
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_to_sixty_four_bytes() {
        assert!(!super::valid_len(b""));
        assert!(super::valid_len(b"a"));
        assert!(super::valid_len(&[b'a'; 64]));
        assert!(!super::valid_len(&[b'a'; 65]));
    }
}
