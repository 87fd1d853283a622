//! Writing `vault.json` and replaying one case of it (spec 4.14).

use super::*;

pub(super) struct Journey<'a> {
    pub(super) scenario: &'a str,
    pub(super) comment: &'a str,
    pub(super) flags: &'a [&'a str],
    pub(super) account: &'a [u8],
    pub(super) budget: u8,
    pub(super) password: &'a [u8],
    pub(super) other_password: Option<&'a [u8]>,
    pub(super) tamper: Option<Value>,
    /// The profile of the vault's policy.
    pub(super) ksf: KsfProfile,
}

impl Journey<'_> {
    pub(super) fn case(&self, slug: &str) -> Value {
        let mut config = suite_config();
        for (field, value) in [
            ("ksfProfile", json!(self.ksf.code())),
            ("ksfParams", json!(ksf_params(self.ksf))),
            ("fleetId", json!(hex::encode(FLEET_ID))),
            ("fleetKeyId", json!(1)),
            ("accountId", json!(hex::encode(self.account))),
            ("budget", json!(self.budget)),
            ("now", json!(NOW)),
            ("sessionLifetime", json!(300)),
            ("tokenLifetime", json!(300)),
        ] {
            config[field] = value;
        }
        let seed = format!("vault/{slug}");
        let mut inputs = json!({
            "seed": seed,
            "password": hex::encode(self.password),
            "backupKey": hex::encode(draw(&format!("{seed}/K"), 32)),
        });
        if let Some(p) = self.other_password {
            inputs["otherPassword"] = json!(hex::encode(p));
        }
        if let Some(t) = &self.tamper {
            match t.get("otherAccountId") {
                Some(other) => inputs["otherAccountId"] = other.clone(),
                None => inputs["tamper"] = t.clone(),
            }
        }
        let mut case = run_journey(self.scenario, &config, &inputs, Source::Derive(seed))
            .unwrap_or_else(|e| panic!("vault vector {slug}: {e}"));
        case["comment"] = json!(self.comment);
        case["flags"] = json!(self.flags);
        case
    }
}

/// Builds the vector file.
pub fn generate() -> Value {
    let journey = |scenario, comment, flags, account, budget, other_password| Journey {
        scenario,
        comment,
        flags,
        account,
        budget,
        password: b"correct horse battery staple",
        other_password,
        tamper: None,
        ksf: KsfProfile::Fast,
    };
    let valid = [
        journey(
            "register-login",
            "register, then log in and recover K",
            &["Registration", "Login", "UnseenVersion"][..],
            &b"account-1"[..],
            10,
            None,
        ),
        journey(
            "wrong-password",
            "one wrong password: KE2, then the client stops",
            &["Registration", "WrongPassword"],
            b"account-2",
            5,
            Some(&b"Tr0ub4dor&3"[..]),
        ),
        journey(
            "lockout",
            "budget 2: two wrong passwords spend it, a third wrong KE1 is refused as Exhausted while they are in flight; 301 s later the right password's KE1 locks the account and erases K",
            &["Registration", "WrongPassword", "Lockout"],
            b"account-3",
            2,
            Some(&b"Tr0ub4dor&3"[..]),
        ),
        journey(
            "unknown-account",
            "KE1 for an account nobody registered: fake KE2, phantom record",
            &["UnknownAccount", "WrongPassword", "UnseenVersion"],
            b"account-4",
            3,
            None,
        ),
        journey(
            "change-password",
            "log in, change the password with the login's token keeping K, log in with the new one",
            &["Registration", "Login", "PasswordChange"],
            b"account-5",
            5,
            Some(&b"new password, same K"[..]),
        ),
        journey(
            "register-start-twice",
            "one RegisterStart envelope sent twice: each RegisterChallenge evaluates the blinded element under its own fresh OPRF seed (different evaluations); the client finishes with the second, and the login evaluates under that registration's seed",
            &["Registration", "FreshOprfKey", "Login"],
            b"account-11",
            5,
            None,
        ),
        journey(
            "ke1-retry",
            "the same KE1 envelope twice: charged once, two KE2 for one attempt; the login finishes on the second",
            &["Registration", "Login", "Ke1Retry"],
            b"account-6",
            5,
            None,
        ),
    ];
    let journeys: Vec<Value> = valid.iter().map(|j| j.case(j.scenario)).collect();

    let account = b"account-7";
    let enc_at = 1 + 1 + 2 + account.len();
    let tampered = [
        ("version byte changed to 2", json!({ "offset": 0, "xor": 3 })),
        ("key id changed to 2", json!({ "offset": 1, "xor": 3 })),
        ("account id changed", json!({ "offset": enc_at - 1, "xor": 1 })),
        ("enc changed", json!({ "offset": enc_at, "xor": 0x80 })),
        ("ciphertext changed", json!({ "offset": enc_at + 32 + 5, "xor": 1 })),
        // The last byte of a KE1 envelope: the tag of 97 bytes of LoginStart.
        ("tag changed", json!({ "offset": enc_at + 32 + 97 + 16 - 1, "xor": 1 })),
        ("cut inside enc", json!({ "truncateTo": enc_at + 16 })),
    ];
    let mut rejected = Vec::new();
    for (i, (comment, how)) in tampered.into_iter().enumerate() {
        let j = Journey {
            tamper: Some(how),
            ..journey("tampered-envelope", comment, &["ModifiedEnvelope"], account, 5, None)
        };
        rejected.push(j.case(&format!("tampered-envelope/{i}")));
    }
    for j in [
        journey(
            "replayed-ke3",
            "the KE3 envelope of a successful login, sent again",
            &["Registration", "Login", "ReplayedKe3"],
            b"account-8",
            5,
            None,
        ),
        Journey {
            tamper: Some(json!({ "offset": 20, "xor": 1 })),
            ..journey(
                "wrong-ticket",
                "KE3 with its ticket damaged",
                &["Registration", "WrongTicket", "UnchargedRefusal"],
                b"account-9",
                5,
                None,
            )
        },
        journey(
            "swapped-ticket",
            "two logins; the first KE3 is sent with the second login's ticket",
            &["Registration", "WrongTicket"],
            b"account-10",
            5,
            None,
        ),
        journey(
            "expired-registration-ticket",
            "RegisterFinish 301 s after RegisterStart: the registration ticket expired",
            &["RegistrationTicket", "UnchargedRefusal"],
            b"account-12",
            5,
            None,
        ),
        Journey {
            tamper: Some(json!({ "otherAccountId": hex::encode(b"account-13-other") })),
            ..journey(
                "foreign-registration-ticket",
                "RegisterFinish carrying the registration ticket the vault issued for another account",
                &["RegistrationTicket"],
                b"account-13",
                5,
                None,
            )
        },
        journey(
            "re-register-without-token",
            "a second registration of a registered account without a login token: RegisterStart is answered as for any account (under a fresh seed), RegisterFinish is refused as NotAuthorised with remaining 0",
            &["Registration", "ReRegistration", "UnchargedRefusal"],
            b"account-14",
            5,
            Some(&b"attacker's guess"[..]),
        ),
        journey(
            "replay-after-delete",
            "register, log in, delete; the first RegisterFinish envelope replayed: the deleted record's tombstone keeps its version, so the replay is stale",
            &["Registration", "Login", "Delete", "DeleteReplay", "UnchargedRefusal"],
            b"account-15",
            5,
            None,
        ),
    ] {
        rejected.push(j.case(j.scenario));
    }

    let channel_case = |slug: &str,
                        comment: &str,
                        flags: &[&str],
                        request: &[u8],
                        response: &[u8],
                        extra: Value| {
        channel_vector(b"account-channel", slug, comment, flags, request, response, extra)
    };
    let delete = Request::Delete { token: [0x42; 16] }.encode();
    let deleted = Response::Deleted.encode();
    let long = draw("vault/channel/long", 600);
    let channel_cases = vec![
        channel_case(
            "delete",
            "a Delete request and its Deleted response",
            &["Channel"],
            &delete,
            &deleted,
            json!({}),
        ),
        channel_case("long", "600 bytes each way", &["Channel"], &long, &long[..300], json!({})),
        channel_case("empty", "empty plaintexts both ways", &["Channel"], b"", b"", json!({})),
        channel_case(
            "modified-response",
            "the response's last byte changed",
            &["Channel", "ModifiedResponse"],
            &delete,
            &deleted,
            json!({ "tamperResponse": { "offset": 32 + 1 + 16 - 1, "xor": 1 } }),
        ),
        channel_case(
            "wrong-fleet",
            "opened by an HSM of another fleet",
            &["Channel", "WrongFleet"],
            &delete,
            &deleted,
            json!({ "hsmFleetId": hex::encode(b"another.fleet.example") }),
        ),
    ];
    let mut groups = vec![
        json!({ "type": "Journey", "tests": journeys }),
        json!({ "type": "Rejected", "tests": rejected }),
        json!({ "type": "Channel", "tests": channel_cases }),
    ];
    // Cases added later come in groups of their own after these, so that the tcIds above
    // never move; each has its own seed, so no earlier case's draws change.
    groups.extend(later_groups());
    groups.push(json!({ "type": "Record", "tests": record_cases() }));
    groups.push(json!({ "type": "Secrets", "tests": secrets_cases() }));
    // The production profile: about 7 s per Argon2id evaluation in a debug build.
    let mobile = Journey {
        scenario: "register-login",
        comment: "the Mobile profile (code 1), as deployed: register, then log in and recover K",
        flags: &["Registration", "Login", "MobileProfile"],
        account: b"account-32",
        budget: 10,
        password: b"correct horse battery staple",
        other_password: None,
        tamper: None,
        ksf: KsfProfile::Mobile,
    };
    groups.push(json!({ "type": "Journey", "tests": [mobile.case("register-login-mobile")] }));
    groups.push(json!({ "type": "Channel", "tests": sealing_cases() }));
    let again = Journey {
        scenario: "ke1-again-after-expiry",
        comment: "a KE1, then the same KE1 envelope 301 s later, once its attempt is no longer live: charged again (the expired attempt dropped, the same attempt id pending under the next serial); the KE3 of the first KE2 is session-invalid with remaining 0, its ticket naming the dropped serial",
        flags: &["Registration", "ExpiredAttempt", "UnchargedRefusal"],
        account: b"account-33",
        budget: 5,
        ksf: KsfProfile::Fast,
        // The same password, no second password and no tampering, as the Mobile journey.
        ..mobile
    };
    groups.push(json!({ "type": "Rejected", "tests": [again.case(again.scenario)] }));
    let key_200 = channel_vector_in(
        FLEET_ID,
        200,
        b"account-channel",
        "key-id-200",
        "a request sealed to the fleet key with id 200: the id is in the clear header and in info",
        &["Channel"],
        &delete,
        &deleted,
        json!({}),
    );
    groups.push(json!({ "type": "Channel", "tests": [key_200] }));
    groups.push(json!({ "type": "Secrets", "tests": [empty_fleet_id_case()] }));
    number(&mut groups);
    envelope(ALGORITHM, HEADER, NOTES, groups)
}

/// A case of the sealed channel alone, for `account`.
pub(super) fn channel_vector(
    account: &[u8],
    slug: &str,
    comment: &str,
    flags: &[&str],
    request: &[u8],
    response: &[u8],
    extra: Value,
) -> Value {
    channel_vector_in(FLEET_ID, 1, account, slug, comment, flags, request, response, extra)
}

/// A case of the sealed channel alone, for `account` of fleet `fleet`.
#[allow(clippy::too_many_arguments)]
pub(super) fn channel_vector_in(
    fleet: &[u8],
    key_id: u8,
    account: &[u8],
    slug: &str,
    comment: &str,
    flags: &[&str],
    request: &[u8],
    response: &[u8],
    extra: Value,
) -> Value {
    let config = json!({
        "hpke": "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM",
        "fleetId": hex::encode(fleet),
        "fleetKeyId": key_id,
        "accountId": hex::encode(account),
    });
    let mut inputs = json!({
        "fleetKeyIkm": hex::encode(draw("vault/channel/ikmR", 32)),
        "ikmE": hex::encode(draw(&format!("vault/channel/{slug}/ikmE"), 32)),
        "responseNonce": hex::encode(draw(&format!("vault/channel/{slug}/response-nonce"), 32)),
        "requestPlaintext": hex::encode(request),
        "responsePlaintext": hex::encode(response),
    });
    for (k, v) in extra.as_object().expect("an object") {
        inputs[k] = v.clone();
    }
    let mut case = run_channel(&config, &inputs).unwrap_or_else(|e| panic!("channel {slug}: {e}"));
    case["comment"] = json!(comment);
    case["flags"] = json!(flags);
    case
}

/// The groups added after the first 26 cases (issue 13): the rules of sections 4.4, 4.7, 4.8
/// and 4.10.2 those did not pin.
pub(super) fn later_groups() -> Vec<Value> {
    let journey = |scenario, comment, flags, account, budget, other_password| Journey {
        scenario,
        comment,
        flags,
        account,
        budget,
        password: b"correct horse battery staple",
        other_password,
        tamper: None,
        ksf: KsfProfile::Fast,
    };
    let channel_case = channel_vector;
    pub(super) const LONG_ACCOUNT: &[u8; 64] =
        b"account-16-is-sixty-four-bytes-long-the-most-an-account-id-holds";
    let valid = [
        journey(
            "register-login",
            "an account id of 64 bytes, the most an envelope carries: register, then log in and recover K",
            &["Registration", "Login", "EnvelopeBounds"][..],
            LONG_ACCOUNT,
            10,
            None,
        ),
        journey(
            "login-ticket-at-expiry",
            "the KE3 arrives 300 s after its KE1, at the ticket's not_after: still accepted",
            &["Registration", "Login", "LoginTicketExpiry"],
            b"account-17",
            5,
            None,
        ),
        journey(
            "delete-at-token-expiry",
            "the Delete arrives 300 s after the login, at the token's not_after: still accepted",
            &["Registration", "Login", "Delete", "TokenExpiry"],
            b"account-18",
            5,
            None,
        ),
        journey(
            "phantom-any-token",
            "KE1 for an unknown account leaves a phantom; a registration whose RegisterFinish carries a made-up token is stored: a phantom's token is not looked at",
            &["UnknownAccount", "WrongPassword", "Registration", "PhantomToken"],
            b"account-19",
            5,
            None,
        ),
    ];
    let slug = |j: &Journey<'_>| {
        if j.account == LONG_ACCOUNT {
            "register-login-64-byte-account".to_owned()
        } else {
            j.scenario.to_owned()
        }
    };
    let journeys: Vec<Value> = valid.iter().map(|j| j.case(&slug(j))).collect();

    let other = Some(&b"Tr0ub4dor&3"[..]);
    let rejected: Vec<Value> = [
        journey(
            "undecodable-request",
            "a registered account (5 left) sent plaintexts that do not decode: empty, kind 6, a KE1 with a byte after it, a KE1 one byte short, a RegisterStart with token flag 2, a LoginFinish ticket of 513 bytes, a Delete one byte short; each is invalid-request with remaining 0 and changes nothing",
            &["Registration", "InvalidRequest", "UnchargedRefusal"][..],
            b"account-20",
            5,
            None,
        ),
        journey(
            "invalid-register-start",
            "RegisterStart whose registration_request is not a canonical element, then the identity: invalid-request, nothing stored",
            &["InvalidRequest", "UnchargedRefusal"],
            b"account-21",
            5,
            None,
        ),
        journey(
            "invalid-ke1",
            "a registered account (5 left) sent a KE1 whose blinded element is not canonical, is the identity, then whose client key share is not canonical: invalid-request with remaining 0, not charged",
            &["Registration", "InvalidRequest", "UnchargedRefusal"],
            b"account-22",
            5,
            None,
        ),
        journey(
            "invalid-registration-record",
            "RegisterFinish whose registration record's client_public_key is not canonical, then the identity (ticket, version and profile good): invalid-request, nothing stored",
            &["InvalidRequest", "UnchargedRefusal"],
            b"account-23",
            5,
            None,
        ),
        journey(
            "non-policy-ksf-profile",
            "RegisterFinish naming profile 1 (mobile: known, not this vault's policy), 3, 0, then 255 with a stale record_version: invalid-request each time, the profile checked before the version, nothing stored",
            &["InvalidRequest", "UnchargedRefusal"],
            b"account-24",
            5,
            None,
        ),
        journey(
            "locked-undecodable",
            "budget 1, one wrong password, 301 s later a KE1 locks the account; then an empty plaintext and a KE1 with a byte after it: a request that does not decode is invalid-request even on a locked account",
            &["Registration", "WrongPassword", "Lockout", "InvalidRequest", "LockedAccount"],
            b"account-25",
            1,
            other,
        ),
        journey(
            "locked-invalid-element",
            "a locked account (as in the case before) sent requests that decode but hold invalid elements: a KE1 with a non-canonical blinded element, a RegisterStart with one, a RegisterFinish with profile 0 and an invalid record, a LoginFinish with a made-up ticket, a Delete with a made-up token: each is locked",
            &["Registration", "WrongPassword", "Lockout", "LockedAccount"],
            b"account-26",
            1,
            other,
        ),
        journey(
            "expired-login-ticket",
            "the KE3 arrives 301 s after its KE1, one second after the ticket's not_after: session-invalid carrying the record's remaining (4), the KE3 unchecked and the attempt removed",
            &["Registration", "LoginTicketExpiry"],
            b"account-27",
            5,
            None,
        ),
        journey(
            "expired-login-ticket-locks",
            "budget 1: the KE1 spends it, and its KE3 arrives after the ticket's not_after with nothing else live: the LoginFinish locks the account",
            &["Registration", "LoginTicketExpiry", "LoginFinishLock"],
            b"account-28",
            1,
            None,
        ),
        journey(
            "failed-ke3-locks",
            "budget 1: the KE1 spends it, and its KE3 (a byte changed, resealed) does not verify with nothing else live: the LoginFinish locks the account",
            &["Registration", "LoginFinishLock"],
            b"account-29",
            1,
            None,
        ),
        journey(
            "delete-not-authorised",
            "Delete with a made-up token for an account with no record, a phantom, a registered account holding no token, and one holding another; then the login's own Delete and the same envelope again, on the tombstone: not-authorised with remaining 0 each time",
            &["UnknownAccount", "WrongPassword", "Registration", "Login", "Delete", "DeleteRefused", "UnchargedRefusal"],
            b"account-30",
            5,
            None,
        ),
        journey(
            "delete-token-expired",
            "the Delete arrives 301 s after the login, one second after the token's not_after: not-authorised",
            &["Registration", "Login", "DeleteRefused", "TokenExpiry"],
            b"account-31",
            5,
            None,
        ),
    ]
    .iter()
    .map(|j| j.case(j.scenario))
    .collect();

    let max = draw("vault/channel/max/plaintext", 8192);
    let bound =
        |slug: &str, comment: &str, flags: &[&str], account: &[u8], len: usize, extra: Value| {
            channel_case(account, slug, comment, flags, &max[..len], &max[..len], extra)
        };
    let channel_cases = vec![
        bound(
            "max",
            "a 64-byte account id and 8192-byte plaintexts both ways: an envelope of 8308 bytes (ciphertext 8208) and a response of 8240, the largest that open",
            &["Channel", "EnvelopeBounds", "ResponseBounds"],
            LONG_ACCOUNT,
            8192,
            json!({}),
        ),
        bound(
            "ciphertext-too-long",
            "the largest envelope with one byte appended: 8209 bytes follow enc",
            &["Channel", "EnvelopeBounds"],
            LONG_ACCOUNT,
            8192,
            json!({ "tamperRequest": { "append": "00" } }),
        ),
        bound(
            "account-too-long",
            "the length of a 64-byte account id raised to 65",
            &["Channel", "EnvelopeBounds"],
            LONG_ACCOUNT,
            0,
            json!({ "tamperRequest": { "offset": 3, "xor": 0x40 ^ 65 } }),
        ),
        bound(
            "account-empty",
            "the length of the account id set to 0",
            &["Channel", "EnvelopeBounds"],
            b"account-channel",
            0,
            json!({ "tamperRequest": { "offset": 3, "xor": 15 } }),
        ),
        bound(
            "ciphertext-too-short",
            "an empty plaintext's envelope cut by one byte: 15 bytes follow enc",
            &["Channel", "EnvelopeBounds"],
            b"account-channel",
            0,
            json!({ "tamperRequest": { "truncateTo": 1 + 1 + 2 + 15 + 32 + 15 } }),
        ),
        bound(
            "response-too-long",
            "the largest response (8240 bytes) with one byte appended",
            &["Channel", "ResponseBounds"],
            b"account-channel",
            8192,
            json!({ "tamperResponse": { "append": "00" } }),
        ),
        bound(
            "response-too-short",
            "the response to an empty plaintext (48 bytes) cut by one byte",
            &["Channel", "ResponseBounds"],
            b"account-channel",
            0,
            json!({ "tamperResponse": { "truncateTo": 47 } }),
        ),
    ];
    vec![
        json!({ "type": "Journey", "tests": journeys }),
        json!({ "type": "Rejected", "tests": rejected }),
        json!({ "type": "Channel", "tests": channel_cases }),
    ]
}

/// The client's own bounds when it seals (spec 4.4, issue 13): the ids and the plaintext it
/// refuses to seal, and the longest fleet id it seals.
fn sealing_cases() -> Vec<Value> {
    let long_fleet = [b'f'; 64];
    let too_long = [b'f'; 65];
    let plaintext = draw("vault/channel/max/plaintext", 8193);
    let case = |slug: &str, comment: &str, fleet: &[u8], account: &[u8], len: usize| {
        let request = &plaintext[..len];
        let slug = format!("sealing/{slug}");
        channel_vector_in(
            fleet,
            1,
            account,
            &slug,
            comment,
            &["Channel", "SealingBounds"],
            request,
            request,
            json!({}),
        )
    };
    vec![
        case(
            "fleet-64",
            "a fleet id of 64 bytes, the longest: the client seals, the HSM of that fleet opens",
            &long_fleet,
            b"account-channel",
            0,
        ),
        case(
            "fleet-empty",
            "an empty fleet id: the client does not seal",
            b"",
            b"account-channel",
            0,
        ),
        case(
            "fleet-65",
            "a fleet id of 65 bytes: the client does not seal",
            &too_long,
            b"account-channel",
            0,
        ),
        case("account-empty", "an empty account id: the client does not seal", FLEET_ID, b"", 0),
        case(
            "account-65",
            "an account id of 65 bytes: the client does not seal",
            FLEET_ID,
            &too_long,
            0,
        ),
        case(
            "plaintext-8193",
            "a plaintext of 8193 bytes, one more than a request holds: the client does not seal",
            FLEET_ID,
            b"account-channel",
            8193,
        ),
    ]
}

/// Checks one case by replaying it.
pub fn verify_case(case: &Value) -> Result<(), String> {
    let scenario = case["scenario"].as_str().ok_or("no scenario")?;
    let mut found = if scenario == "channel" {
        run_channel(&case["config"], &case["inputs"])?
    } else if scenario == "record" {
        run_record(&hex_field(case, "record")?)?
    } else if scenario == "secrets" {
        run_secrets(&hex_field(case, "secrets")?)?
    } else {
        let recorded = case["inputs"]["draws"].as_array().ok_or("no inputs.draws")?;
        let mut queue = VecDeque::new();
        for d in recorded {
            let name = d["name"].as_str().ok_or("a draw without a name")?;
            queue.push_back((name.to_owned(), hex_field(d, "value")?));
        }
        let mut inputs = case["inputs"].clone();
        if let Some(map) = inputs.as_object_mut() {
            map.remove("draws");
        }
        run_journey(scenario, &case["config"], &inputs, Source::Replay(queue))?
    };
    for field in ["tcId", "comment", "flags"] {
        found[field] = case[field].clone();
    }
    if found != *case {
        let diff = [
            "result",
            "error",
            "config",
            "inputs",
            "intermediates",
            "outputs",
            "record",
            "secrets",
        ]
        .into_iter()
        .find(|f| found[*f] != case[*f])
        .unwrap_or("a top-level field");
        return Err(format!("the replay differs in {diff}"));
    }
    Ok(())
}
