//! The crypt15 header-rule vectors (the fourth and fifth groups of `crypt15.json`, spec 6.9):
//! one file for each rule of sections 6.4.1 and 6.4.2, valid but for that rule, and a zlib
//! stream with a preset dictionary (section 6.6).

use e2ee_backup_crypt15::header::{BackupPrefix, FileHeader, Framing, MAX_PREFIX_LEN};
use e2ee_backup_crypt15::{IV_LEN, MD5_LEN, decrypt_to_vec, encrypt_compressed};
use e2ee_backup_kdf::BackupKey;
use md5::{Digest, Md5};
use serde_json::{Value, json};

use super::{APP_VERSION, Inputs, chat_text, iv, raw_plaintext, verify_case};
use crate::{draw, draw32};

/// `value` as a varint of at least `len` bytes: non-minimal when `len` asks for more bytes
/// than the value needs.
fn padded_varint(mut value: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 && out.len() + 1 >= len {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn varint(value: u64) -> Vec<u8> {
    padded_varint(value, 1)
}

fn tag(field: u64, wire_type: u8) -> Vec<u8> {
    varint(field << 3 | u64::from(wire_type))
}

/// A varint field.
fn fv(field: u64, value: u64) -> Vec<u8> {
    [tag(field, 0), varint(value)].concat()
}

/// A length-delimited field.
fn fb(field: u64, value: &[u8]) -> Vec<u8> {
    [tag(field, 2), varint(value.len() as u64), value.to_vec()].concat()
}

/// A fixed-width field: wire type 1 with 8 bytes, or 5 with 4.
fn ff(field: u64, wire_type: u8, value: &[u8]) -> Vec<u8> {
    [tag(field, wire_type), value.to_vec()].concat()
}

/// Adler-32 (RFC 1950).
fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    b << 16 | a
}

/// One database encrypted under one IV, and the parts of a header around that IV, from which
/// the header-rule files are spliced: GCM does not cover the header, so `C || T` fits any
/// header holding this IV, and the MD5 is recomputed over the new bytes. Each file is
/// therefore valid except for the one rule its header breaks.
struct Rules {
    key: [u8; 32],
    iv: [u8; IV_LEN],
    plaintext: Vec<u8>,
    /// `C || T`.
    body: Vec<u8>,
}

impl Rules {
    fn new() -> Self {
        let iv = iv("crypt15/iv/rules");
        let mut rules = Self {
            key: draw32("crypt15/key"),
            iv,
            plaintext: chat_text("crypt15/chat/rules", 120),
            body: Vec::new(),
        };
        let inputs = rules.inputs(BackupPrefix::minimal(iv).encode(), Framing::Varint);
        let file = inputs.encrypt();
        rules.body = file[inputs.header().len()..file.len() - MD5_LEN].to_vec();
        rules
    }

    fn inputs(&self, prefix: Vec<u8>, framing: Framing) -> Inputs {
        Inputs { key: self.key, prefix, framing, level: Some(1), plaintext: self.plaintext.clone() }
    }

    /// `lead || prefix || C || T || MD5`.
    fn file(&self, lead: &[u8], prefix: &[u8]) -> Vec<u8> {
        let mut file = [lead, prefix, &self.body].concat();
        let digest = Md5::digest(&file);
        file.extend_from_slice(&digest);
        file
    }

    fn key_type(&self) -> Vec<u8> {
        fv(1, 1)
    }

    /// Field 3.1, the IV.
    fn iv_field(&self) -> Vec<u8> {
        fb(1, &self.iv)
    }

    /// Field 3, holding `fields`.
    fn c15(&self, fields: &[Vec<u8>]) -> Vec<u8> {
        fb(3, &fields.concat())
    }

    /// Field 3 as the writer writes it.
    fn c15_iv(&self) -> Vec<u8> {
        self.c15(&[self.iv_field()])
    }

    /// Field 4, holding `fields`.
    fn info(&self, fields: &[Vec<u8>]) -> Vec<u8> {
        fb(4, &fields.concat())
    }

    fn app_version(&self) -> Vec<u8> {
        fb(1, APP_VERSION.as_bytes())
    }

    fn suffix(&self) -> Vec<u8> {
        fb(3, b"07")
    }

    /// Field 4 as the writer writes it: app version and phone suffix.
    fn info_std(&self) -> Vec<u8> {
        self.info(&[self.app_version(), self.suffix()])
    }

    /// Key type, IV and `info` with `extra` appended to the BackupPrefix.
    fn with(&self, extra: &[Vec<u8>]) -> Vec<u8> {
        [self.key_type(), self.c15_iv(), self.info_std(), extra.concat()].concat()
    }

    /// A prefix of exactly `len` bytes: key type, IV, and an unknown field 15 of zero bytes.
    fn padded_prefix(&self, len: usize) -> Vec<u8> {
        let head = [self.key_type(), self.c15_iv()].concat();
        let mut fill = len - head.len() - 4;
        loop {
            let prefix = [head.clone(), fb(15, &vec![0; fill])].concat();
            match prefix.len().cmp(&len) {
                std::cmp::Ordering::Equal => return prefix,
                std::cmp::Ordering::Less => fill += 1,
                std::cmp::Ordering::Greater => fill -= 1,
            }
        }
    }
}

/// Valid files whose headers use what readers MUST accept and the writer never writes:
/// unknown fields at each level, non-minimal and ten-byte varints, the largest field number,
/// the longest prefix, and leads of no framing (`framing` null).
pub(super) fn rule_valid_cases() -> Vec<Value> {
    let r = Rules::new();
    let mut cases = Vec::new();
    let mut valid = |comment: &str, flags: &[&str], prefix: Vec<u8>| {
        let inputs = r.inputs(prefix, Framing::Varint);
        cases.push(inputs.case(comment, &[&["SingleFile"], flags].concat()));
    };
    valid(
        "6.4.2 rule 6: unknown fields 15 to 18 of wire types 0, 1, 2 and 5 in the BackupPrefix are skipped",
        &["UnknownFields"],
        [
            r.key_type(),
            fv(15, 7),
            r.c15_iv(),
            ff(16, 1, &[1, 2, 3, 4, 5, 6, 7, 8]),
            fb(17, b"x"),
            ff(18, 5, &[9, 10, 11, 12]),
            r.info_std(),
        ]
        .concat(),
    );
    valid(
        "6.4.2 rule 6: field 2 (crypt14 key data) beside field 3 is skipped, twice and with two wire types",
        &["UnknownFields"],
        [
            r.key_type(),
            fb(2, &draw("crypt15/rules/crypt14", 32)),
            r.c15_iv(),
            fv(2, 5),
            r.info_std(),
        ]
        .concat(),
    );
    valid(
        "6.4.2 rule 6: c15_iv carries fields 2 to 6 of wire types 0, 1, 2 and 5 around its field 1, which are skipped",
        &["UnknownFields"],
        [
            r.key_type(),
            r.c15(&[
                fv(2, 1),
                ff(3, 1, &[0; 8]),
                fb(4, b"ab"),
                r.iv_field(),
                ff(5, 5, &[0; 4]),
                fv(6, 0),
            ]),
            r.info_std(),
        ]
        .concat(),
    );
    valid(
        "6.4.2 rule 6: info carries fields 2, 40, 41 and 100 of wire types 0, 1, 5 and 2, which are skipped",
        &["UnknownFields", "PhoneSuffix"],
        [
            r.key_type(),
            r.c15_iv(),
            r.info(&[
                fv(2, 9),
                r.app_version(),
                ff(40, 1, &[0xff; 8]),
                r.suffix(),
                ff(41, 5, &[0xff; 4]),
                fb(100, b"zz"),
            ]),
        ]
        .concat(),
    );
    valid(
        "6.4.2 rule 3: an unknown field numbered 2^29 - 1, the largest, is skipped",
        &["UnknownFields", "FieldNumber"],
        r.with(&[fb((1 << 29) - 1, b"")]),
    );
    let iv_nm = [padded_varint(0x0a, 2), padded_varint(16, 4), r.iv.to_vec()].concat();
    valid(
        "6.4.2 rule 2: non-minimal varints are accepted: tags 88 00, 9a 00, 8a 00, value 81 80 00, lengths of 3 and 4 bytes",
        &["NonMinimalVarint"],
        [
            padded_varint(0x08, 2),
            padded_varint(1, 3),
            padded_varint(0x1a, 2),
            padded_varint(iv_nm.len() as u64, 3),
            iv_nm,
            r.info_std(),
        ]
        .concat(),
    );
    let ten_ones = [[0xffu8; 9].as_slice(), &[0x01]].concat();
    valid(
        "6.4.2 rule 2: ten-byte varints whose tenth byte is 01 (key type -1) and 00 (backup version 7, non-minimal); feature 4.5 = 2 is true",
        &["NonMinimalVarint", "FeatureTable"],
        [
            tag(1, 0),
            ten_ones,
            r.c15_iv(),
            r.info(&[r.app_version(), tag(4, 0), padded_varint(7, 10), fv(5, 2)]),
        ]
        .concat(),
    );
    valid(
        "6.4.1: a BackupPrefix of 65536 bytes, the largest, behind a three-byte lead 80 80 04",
        &["PrefixLength", "LongPrefix", "UnknownFields"],
        r.padded_prefix(MAX_PREFIX_LEN),
    );
    let std = r.with(&[]);
    for (comment, lead) in [
        (
            "6.4.1: a non-minimal two-byte lead (a8 00 for 40) and no flag byte",
            padded_varint(40, 2),
        ),
        (
            "6.4.1: a non-minimal three-byte lead (a8 80 00 for 40), the longest, then the flag byte",
            [padded_varint(40, 3), vec![0x01]].concat(),
        ),
    ] {
        assert_eq!(std.len(), 40);
        let mut case = r.inputs(std.clone(), Framing::Varint).case(
            comment,
            &["SingleFile", "PrefixLength", "NonMinimalVarint", "ReaderOnly", "PhoneSuffix"],
        );
        case["framing"] = Value::Null;
        case["file"] = json!(hex::encode(r.file(&lead, &std)));
        cases.push(case);
    }
    for case in &cases {
        verify_case(case).expect("a header-rule case verifies");
    }
    cases
}

/// Files each of whose headers breaks one rule of sections 6.4.1 and 6.4.2 and is otherwise
/// valid (its MD5 matches and its body decrypts), then a zlib stream with a preset dictionary.
pub(super) fn rule_invalid_cases() -> Vec<Value> {
    let r = Rules::new();
    let hex_key = hex::encode(r.key);
    let key = BackupKey::from_bytes(r.key);
    let case = |comment: &str, flags: &[&str], file: Vec<u8>, error: &str| {
        let found = decrypt_to_vec(&key, &file).map(|_| "no error").unwrap_or_else(|e| e.code());
        assert_eq!(found, error, "generator expectation for {comment:?}");
        json!({
            "comment": comment, "flags": flags, "result": "invalid",
            "key": hex_key, "file": hex::encode(file), "error": error,
        })
    };
    let mut cases = Vec::new();
    let mut bad = |comment: &str, flag: &str, prefix: Vec<u8>| {
        let file = r.file(&varint(prefix.len() as u64), &prefix);
        cases.push(case(comment, &[flag], file, "malformed-header"));
    };
    let (kt, c15, info) = (r.key_type(), r.c15_iv(), r.info_std());

    // Rule 3: wire types 3, 4, 6 and 7 are refused wherever they appear.
    bad(
        "6.4.2 rule 3: an unknown field 15 as a group (wire types 3 then 4): groups are refused, not skipped",
        "WireType",
        [kt.clone(), c15.clone(), tag(15, 3), tag(15, 4), info.clone()].concat(),
    );
    bad(
        "6.4.2 rule 3: an unknown field 15 of wire type 4 (end group) alone",
        "WireType",
        [kt.clone(), c15.clone(), tag(15, 4), info.clone()].concat(),
    );
    bad(
        "6.4.2 rule 3: an unknown field 15 of wire type 6, last",
        "WireType",
        r.with(&[tag(15, 6)]),
    );
    bad(
        "6.4.2 rule 3: an unknown field 15 of wire type 7, last",
        "WireType",
        r.with(&[tag(15, 7)]),
    );
    bad(
        "6.4.2 rule 3: a group (field 2, wire types 3 then 4) inside c15_iv",
        "WireType",
        [kt.clone(), r.c15(&[r.iv_field(), tag(2, 3), tag(2, 4)]), info.clone()].concat(),
    );
    bad(
        "6.4.2 rule 3: a group (field 40, wire types 3 then 4) inside info",
        "WireType",
        [kt.clone(), c15.clone(), r.info(&[r.app_version(), tag(40, 3), tag(40, 4)])].concat(),
    );
    bad(
        "6.4.2 rule 3: field number 0 (wire type 2, empty), last",
        "FieldNumber",
        r.with(&[fb(0, b"")]),
    );
    bad(
        "6.4.2 rule 3: field number 2^29, one above the largest (wire type 0), last",
        "FieldNumber",
        r.with(&[fv(1 << 29, 0)]),
    );

    // Rule 5: a known field with another wire type.
    bad(
        "6.4.2 rule 5: key_type (1) as wire type 5",
        "WireType",
        [ff(1, 5, &[1, 0, 0, 0]), c15.clone(), info.clone()].concat(),
    );
    bad(
        "6.4.2 rule 5: c15_iv (3) as wire type 0, before the real one",
        "WireType",
        [kt.clone(), fv(3, 1), c15.clone(), info.clone()].concat(),
    );
    bad(
        "6.4.2 rule 5: info (4) as wire type 0",
        "WireType",
        [kt.clone(), c15.clone(), fv(4, 1)].concat(),
    );
    bad(
        "6.4.2 rule 5: c15_iv.iv (3.1) as wire type 1, before the real one",
        "WireType",
        [kt.clone(), r.c15(&[ff(1, 1, &r.iv[..8]), r.iv_field()]), info.clone()].concat(),
    );
    bad(
        "6.4.2 rule 5: info.app_version (4.1) as wire type 0",
        "WireType",
        [kt.clone(), c15.clone(), r.info(&[fv(1, 2), r.suffix()])].concat(),
    );
    bad(
        "6.4.2 rule 5: info.backup_version (4.4) as wire type 2",
        "WireType",
        [kt.clone(), c15.clone(), r.info(&[r.app_version(), fb(4, &[1])])].concat(),
    );
    bad(
        "6.4.2 rule 5: feature 4.5 as wire type 5",
        "WireType",
        [kt.clone(), c15.clone(), r.info(&[r.app_version(), ff(5, 5, &[1, 0, 0, 0])])].concat(),
    );

    // Rule 5: a known field twice, the copies equal.
    for (comment, prefix) in [
        ("key_type (1) twice", [kt.clone(), kt.clone(), c15.clone(), info.clone()].concat()),
        ("c15_iv (3) twice, equal", [kt.clone(), c15.clone(), c15.clone(), info.clone()].concat()),
        ("info (4) twice, equal", [kt.clone(), c15.clone(), info.clone(), info.clone()].concat()),
        (
            "c15_iv.iv (3.1) twice, equal",
            [kt.clone(), r.c15(&[r.iv_field(), r.iv_field()]), info.clone()].concat(),
        ),
        (
            "info.app_version (4.1) twice",
            [kt.clone(), c15.clone(), r.info(&[r.app_version(), r.app_version()])].concat(),
        ),
        (
            "info.jid_suffix (4.3) twice",
            [kt.clone(), c15.clone(), r.info(&[r.suffix(), r.suffix()])].concat(),
        ),
        (
            "info.backup_version (4.4) twice",
            [kt.clone(), c15.clone(), r.info(&[fv(4, 1), fv(4, 1)])].concat(),
        ),
        ("feature 4.5 twice", [kt.clone(), c15.clone(), r.info(&[fv(5, 1), fv(5, 1)])].concat()),
    ] {
        bad(&format!("6.4.2 rule 5: {comment}"), "RepeatedField", prefix);
    }

    // Rule 2: varints longer than ten bytes, or whose tenth byte is above 01.
    bad(
        "6.4.2 rule 2: key_type's value 1 as an eleven-byte varint",
        "OverlongVarint",
        [tag(1, 0), padded_varint(1, 11), c15.clone(), info.clone()].concat(),
    );
    bad(
        "6.4.2 rule 2: key_type's value as a ten-byte varint whose tenth byte is 02",
        "OverlongVarint",
        [tag(1, 0), vec![0x81], vec![0x80; 8], vec![0x02], c15.clone(), info.clone()].concat(),
    );
    bad(
        "6.4.2 rule 2: key_type's tag as an eleven-byte varint",
        "OverlongVarint",
        [padded_varint(0x08, 11), varint(1), c15.clone(), info.clone()].concat(),
    );
    bad(
        "6.4.2 rule 2: c15_iv's length 18 as an eleven-byte varint",
        "OverlongVarint",
        [kt.clone(), tag(3, 2), padded_varint(18, 11), r.iv_field(), info.clone()].concat(),
    );
    bad(
        "6.4.2 rule 2: the BackupPrefix ends inside a varint (the value of an unknown field 15)",
        "Overrun",
        r.with(&[tag(15, 0), vec![0x81]]),
    );

    // Rule 4 and rule 1: values that overrun their message.
    bad(
        "6.4.2 rule 4: an unknown fixed64 field 15 with 7 bytes left, last",
        "Overrun",
        r.with(&[tag(15, 1), vec![0; 7]]),
    );
    bad(
        "6.4.2 rule 4: an unknown fixed32 field 15 with 3 bytes left, last",
        "Overrun",
        r.with(&[tag(15, 5), vec![0; 3]]),
    );
    bad(
        "6.4.2 rules 1 and 4: a fixed32 field 2 with 2 bytes left in c15_iv, whose message is followed by info",
        "Overrun",
        [kt.clone(), r.c15(&[r.iv_field(), tag(2, 5), vec![0, 0]]), info.clone()].concat(),
    );
    bad(
        "6.4.2 rule 4: an unknown field 15 of length 5 with 4 bytes left, last",
        "Overrun",
        r.with(&[tag(15, 2), varint(5), vec![0; 4]]),
    );
    bad(
        "6.4.2 rule 4: an unknown field 15 of length 2^64 - 1, last: refused, not wrapped",
        "Overrun",
        r.with(&[tag(15, 2), varint(u64::MAX), vec![0; 4]]),
    );
    let app = APP_VERSION.as_bytes();
    bad(
        "6.4.2 rules 1 and 4: info.app_version's length 12 runs 2 bytes past the end of info, though not past the BackupPrefix (c15_iv follows)",
        "Overrun",
        [kt.clone(), r.info(&[tag(1, 2), varint(app.len() as u64 + 2), app.to_vec()]), c15.clone()]
            .concat(),
    );

    // Rule 7: strings are UTF-8.
    for (comment, field, value) in [
        (
            "info.app_version (4.1) holds a surrogate (ed a0 80)",
            1,
            b"2.24.\xed\xa0\x80.79".to_vec(),
        ),
        ("info.app_version (4.1) holds an overlong '.' (c0 ae)", 1, b"2.24\xc0\xae11.79".to_vec()),
        ("info.jid_suffix (4.3) holds the byte ff", 3, b"0\xff".to_vec()),
    ] {
        bad(
            &format!("6.4.2 rule 7: {comment}"),
            "InvalidUtf8",
            [kt.clone(), c15.clone(), r.info(&[fb(field, &value)])].concat(),
        );
    }

    // Rule 8: missing fields.
    bad(
        "6.4.2 rule 8: c15_iv is empty: field 3.1 is missing",
        "MissingField",
        [kt.clone(), r.c15(&[]), info.clone()].concat(),
    );
    bad(
        "6.4.2 rule 8: c15_iv holds the IV in field 2, not 1: field 3.1 is missing",
        "MissingField",
        [kt.clone(), r.c15(&[fb(2, &r.iv)]), info.clone()].concat(),
    );
    bad(
        "6.4.2 rule 8: no field 3 and no field 2: c15_iv is missing",
        "MissingField",
        [kt.clone(), info.clone()].concat(),
    );

    // Section 6.4.1: the lead.
    let std = r.with(&[]);
    cases.push(case(
        "6.4.1 step 1: a four-byte lead (a8 80 80 00, 40 non-minimal): more than 3 bytes",
        &["PrefixLength"],
        r.file(&padded_varint(std.len() as u64, 4), &std),
        "malformed-header",
    ));
    let big = r.padded_prefix(MAX_PREFIX_LEN + 1);
    cases.push(case(
        "6.4.1 step 2: a lead of 65537 (81 80 04), one above the largest, before a complete 65537-byte BackupPrefix",
        &["PrefixLength"],
        r.file(&varint(big.len() as u64), &big),
        "malformed-header",
    ));

    // Section 6.6, requirement 3: a preset dictionary.
    let header = FileHeader::from_prefix_bytes(&std, Framing::Varint).expect("parses");
    let valid = r.inputs(std.clone(), Framing::Varint).encrypt();
    let stream = raw_plaintext(&key, &valid);
    assert_eq!(&stream[..2], &[0x78, 0x01]);
    let dictionary_id = adler32(b"a dictionary crypt15 does not name");
    let fdict = [&[0x78, 0x20][..], &dictionary_id.to_be_bytes(), &stream[2..]].concat();
    let file = encrypt_compressed(&key, &header, &fdict).expect("encrypts");
    cases.push(case(
        "6.6 requirement 3: the zlib header 78 20 sets FDICT (a preset dictionary, id and stream otherwise valid)",
        &["BadCompression", "PresetDictionary"],
        file.clone(),
        "decompression",
    ));
    cases.push(case(
        "6.5 step 2: the same file with its MD5 cut off: the FDICT header still looks like zlib, so truncated",
        &["Truncation", "PresetDictionary"],
        file[..file.len() - MD5_LEN].to_vec(),
        "truncated",
    ));
    cases
}
