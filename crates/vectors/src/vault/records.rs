//! Cases of stored records alone (spec 4.8): bytes written field by field, which the decoder
//! accepts and encodes back or rejects with a wire error code.

use super::*;

/// The fields of a stored record, written by hand (not by the vault's encoder) so that a case
/// can break one rule at a time.
#[derive(Clone)]
pub(super) struct RecordBytes {
    /// `u8(2) || state || budget || remaining`.
    pub(super) head: [u8; 4],
    pub(super) record_version: u32,
    pub(super) ksf_profile: u8,
    pub(super) registration: Vec<u8>,
    pub(super) sealed_key: Vec<u8>,
    pub(super) oprf_ticket: Vec<u8>,
    pub(super) charges: u64,
    /// `pending_count` as written; `None`: the number of attempts.
    pub(super) pending_count: Option<u8>,
    pub(super) pending: Vec<([u8; 16], u64, u64)>,
    /// `has_token` and what follows it.
    pub(super) token: Vec<u8>,
    /// Bytes after the last field.
    pub(super) trailing: Vec<u8>,
    /// The bytes cut to this length.
    pub(super) cut_to: Option<usize>,
}

impl RecordBytes {
    /// A registered record: budget 5, 3 left, version 7, the fast profile, 4 charges, the
    /// attempts of serials 2 and 3 pending, and a token.
    pub(super) fn registered() -> Self {
        let mut token = vec![1];
        token.extend_from_slice(&draw("vault/record/token", 16));
        token.extend_from_slice(&(NOW + 300).to_be_bytes());
        Self {
            head: [2, 1, 5, 3],
            record_version: 7,
            ksf_profile: KsfProfile::Fast.code(),
            registration: draw("vault/record/registration", 192),
            sealed_key: draw("vault/record/sealed-key", 61),
            oprf_ticket: draw("vault/record/oprf-ticket", 100),
            charges: 4,
            pending_count: None,
            pending: vec![
                (draw("vault/record/attempt-2", 16).try_into().expect("16 bytes"), 2, NOW + 300),
                (draw("vault/record/attempt-3", 16).try_into().expect("16 bytes"), 3, NOW + 301),
            ],
            token,
            trailing: Vec::new(),
            cut_to: None,
        }
    }

    /// A phantom: budget 5, all 5 left, nothing stored, nothing pending, no token.
    pub(super) fn phantom() -> Self {
        Self {
            head: [2, 2, 5, 5],
            registration: Vec::new(),
            sealed_key: Vec::new(),
            oprf_ticket: Vec::new(),
            charges: 0,
            pending: Vec::new(),
            token: vec![0],
            ..Self::registered()
        }
    }

    /// A locked record: budget 5, version 7, 4 charges kept.
    pub(super) fn locked() -> Self {
        Self { head: [2, 3, 5, 0], charges: 4, ..Self::phantom() }
    }

    pub(super) fn bytes(&self) -> Vec<u8> {
        let mut out = self.head.to_vec();
        out.extend_from_slice(&self.record_version.to_be_bytes());
        out.push(self.ksf_profile);
        for field in [&self.registration, &self.sealed_key, &self.oprf_ticket] {
            out.extend_from_slice(&u16::try_from(field.len()).expect("short").to_be_bytes());
            out.extend_from_slice(field);
        }
        out.extend_from_slice(&self.charges.to_be_bytes());
        let count = u8::try_from(self.pending.len()).expect("few attempts");
        out.push(self.pending_count.unwrap_or(count));
        for (id, serial, not_after) in &self.pending {
            out.extend_from_slice(id);
            out.extend_from_slice(&serial.to_be_bytes());
            out.extend_from_slice(&not_after.to_be_bytes());
        }
        out.extend_from_slice(&self.token);
        out.extend_from_slice(&self.trailing);
        if let Some(len) = self.cut_to {
            out.truncate(len);
        }
        out
    }
}

/// A record case from its bytes: the decoder accepts it and encodes it back to the same bytes,
/// or rejects it with a wire error code (spec 4.2).
pub(super) fn run_record(record: &[u8]) -> Result<Value, String> {
    let mut case = json!({ "scenario": "record", "record": hex::encode(record) });
    match AccountRecord::decode(record) {
        Ok(decoded) => {
            expect_eq(
                "the record encoded again",
                hex::encode(decoded.encode()),
                hex::encode(record),
            )?;
            case["result"] = json!("valid");
        }
        Err(e) => {
            case["result"] = json!("invalid");
            case["error"] = json!(e.code());
        }
    }
    Ok(case)
}

/// The record cases: valid records at their bounds, then one rule of the decoder broken at a
/// time in the order spec 4.8 checks them, then records with two faults.
pub(super) fn record_cases() -> Vec<Value> {
    /// A comment, the record a case starts from, its change and the expected error.
    pub(super) type Case =
        (&'static str, fn() -> RecordBytes, fn(&mut RecordBytes), Option<&'static str>);
    let registered = RecordBytes::registered;
    let phantom = RecordBytes::phantom;
    let locked = RecordBytes::locked;
    let cases: Vec<Case> = vec![
        ("a registered record with two attempts pending and a token", registered, |_| {}, None),
        ("a phantom", phantom, |_| {}, None),
        ("a locked record", locked, |_| {}, None),
        (
            "bounds: remaining = budget = pending_count = 2, the mobile profile, the largest serial (charges - 1), no token",
            registered,
            |r| {
                r.head = [2, 1, 2, 2];
                r.ksf_profile = KsfProfile::Mobile.code();
                r.token = vec![0];
            },
            None,
        ),
        ("a first byte of 1", registered, |r| r.head[0] = 1, Some("invalid-value")),
        ("state 0", phantom, |r| r.head[1] = 0, Some("invalid-value")),
        ("state 4", phantom, |r| r.head[1] = 4, Some("invalid-value")),
        (
            "budget 0 (and remaining 0)",
            phantom,
            |r| r.head[2..].copy_from_slice(&[0, 0]),
            Some("invalid-value"),
        ),
        ("remaining 6 above budget 5", phantom, |r| r.head[3] = 6, Some("invalid-value")),
        ("ksf_profile 0", phantom, |r| r.ksf_profile = 0, Some("invalid-value")),
        ("ksf_profile 3", phantom, |r| r.ksf_profile = 3, Some("invalid-value")),
        (
            "a registration record of 193 bytes",
            registered,
            |r| r.registration.push(0),
            Some("too-long"),
        ),
        ("a sealed key of 62 bytes", registered, |r| r.sealed_key.push(0), Some("too-long")),
        ("an oprf ticket of 101 bytes", registered, |r| r.oprf_ticket.push(0), Some("too-long")),
        (
            "registered, a registration record of 191 bytes",
            registered,
            |r| {
                r.registration.pop();
            },
            Some("invalid-value"),
        ),
        (
            "registered, no oprf ticket",
            registered,
            |r| r.oprf_ticket.clear(),
            Some("invalid-value"),
        ),
        (
            "a phantom with a 61-byte sealed key",
            phantom,
            |r| r.sealed_key = vec![0; 61],
            Some("invalid-value"),
        ),
        (
            "a locked record with a 192-byte registration record",
            locked,
            |r| r.registration = vec![0; 192],
            Some("invalid-value"),
        ),
        (
            "pending_count 6 above budget 5 (the attempts are not read)",
            registered,
            |r| r.pending_count = Some(6),
            Some("invalid-value"),
        ),
        (
            "a pending serial equal to charges",
            registered,
            |r| r.pending[1].1 = 4,
            Some("invalid-value"),
        ),
        (
            "an attempt id twice",
            registered,
            |r| r.pending[1].0 = r.pending[0].0,
            Some("invalid-value"),
        ),
        ("has_token 2", registered, |r| r.token = vec![2], Some("invalid-value")),
        (
            "one byte after the last field",
            registered,
            |r| r.trailing = vec![0],
            Some("trailing-bytes"),
        ),
        ("a locked record with remaining 1", locked, |r| r.head[3] = 1, Some("invalid-value")),
        (
            "a locked record with an attempt pending",
            locked,
            |r| r.pending = vec![([7; 16], 3, NOW)],
            Some("invalid-value"),
        ),
        (
            "a locked record with a token",
            locked,
            |r| r.token = RecordBytes::registered().token,
            Some("invalid-value"),
        ),
        // 368 bytes up to the end of the oprf ticket's field, then 5 of the 8 of charges.
        ("cut inside charges", registered, |r| r.cut_to = Some(368 + 5), Some("truncated")),
        ("empty", registered, |r| r.cut_to = Some(0), Some("truncated")),
        (
            "two faults, the locked rule checked last: a locked record with remaining 1 and a byte after the last field",
            locked,
            |r| {
                r.head[3] = 1;
                r.trailing = vec![0];
            },
            Some("trailing-bytes"),
        ),
        (
            "two faults, front to back: remaining above budget and a registration record of 193 bytes",
            registered,
            |r| {
                r.head[3] = 6;
                r.registration.push(0);
            },
            Some("invalid-value"),
        ),
        (
            "two faults, the length's maximum before presence: a phantom with a 62-byte sealed key",
            phantom,
            |r| r.sealed_key = vec![0; 62],
            Some("too-long"),
        ),
    ];
    cases
        .into_iter()
        .map(|(comment, base, edit, error)| {
            let mut fields = base();
            edit(&mut fields);
            let mut case =
                run_record(&fields.bytes()).unwrap_or_else(|e| panic!("record {comment}: {e}"));
            assert_eq!(case.get("error").and_then(Value::as_str), error, "record {comment}");
            case["comment"] = json!(comment);
            case["flags"] = json!(["RecordDecoding"]);
            case
        })
        .collect()
}
