//! Helpers shared by the bench targets (the benchmarks themselves live in the bench targets).
#![forbid(unsafe_code)]

use std::io::Write;

/// `len` bytes of deterministic SQL resembling a dump of a chat database's message table: what
/// a backup mostly holds, compressible the way real ones are.
pub fn chat_db(len: usize) -> Vec<u8> {
    const WORDS: [&str; 32] = [
        "ok", "yes", "no", "thanks", "see", "you", "tomorrow", "at", "the", "station", "lol",
        "did", "get", "my", "message", "call", "me", "when", "home", "love", "dinner", "is",
        "ready", "where", "are", "running", "late", "sorry", "photo", "great", "meeting", "later",
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut out = Vec::with_capacity(len + 512);
    let (mut id, mut timestamp) = (0u64, 1_700_000_000_000u64);
    while out.len() < len {
        id += 1;
        timestamp += next(600_000);
        let (chat, from_me, status) = (next(40), next(2), next(6));
        let key_id = next(u64::MAX);
        write!(
            out,
            "INSERT INTO message VALUES({id},{chat},{from_me},'3EB0{key_id:016X}',{status},\
             {timestamp},{},'",
            timestamp + next(5_000)
        )
        .expect("writing to a Vec");
        for i in 0..2 + next(14) {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(WORDS[next(WORDS.len() as u64) as usize].as_bytes());
        }
        out.extend_from_slice(b"');\n");
    }
    out.truncate(len);
    out
}
