//! The journeys, one scenario each: registration, login, wrong passwords, lockout, refusals,
//! tampering (spec 4.7 to 4.11).
//!
//! One file, though over 700 lines: one short function per scenario over the driver, in the
//! order of the vector file's cases.

use super::*;

/// The case `error` of a journey: what the decisive exchange was answered with.
pub(super) fn journey(
    scenario: &str,
    run: &mut Run,
    inputs: &Value,
) -> Result<Option<String>, String> {
    let password = hex_field(inputs, "password")?;
    let key = || key_field(inputs, "backupKey");
    let other = || hex_field(inputs, "otherPassword");
    match scenario {
        "register-login" => {
            run.register(&password, &key()?)?;
            let session = run.login(&password)?.ok_or("the login failed")?;
            expect_eq("recovered K", session.key(), &key()?)?;
            Ok(None)
        }
        "wrong-password" => {
            run.register(&password, &key()?)?;
            let none = run.login(&other()?)?;
            expect_eq("a wrong password logs in", none.is_none(), true)?;
            Ok(None)
        }
        "lockout" => {
            run.register(&password, &key()?)?;
            for _ in 0..3 {
                if run.login(&other()?)?.is_some() {
                    return Err("a wrong password logged in".into());
                }
            }
            // The spent attempts are still in flight; once their session lifetime has passed,
            // the next KE1 locks the account.
            run.now += 301;
            run.client.push(json!({ "clockAdvancedBy": 301 }));
            if run.login(&password)?.is_some() {
                return Err("a locked account logged in".into());
            }
            Ok(None)
        }
        "unknown-account" => {
            if run.login(&password)?.is_some() {
                return Err("an unknown account logged in".into());
            }
            Ok(None)
        }
        "change-password" => {
            run.register(&password, &key()?)?;
            let session = run.login(&password)?.ok_or("the login failed")?;
            run.change_password(session, &other()?, &key()?)?;
            let session = run.login(&other()?)?.ok_or("the login with the new password failed")?;
            expect_eq("K after the password change", session.key(), &key()?)?;
            Ok(None)
        }
        "ke1-retry" => {
            run.register(&password, &key()?)?;
            let LoginStarted { state, start_draws, answer: first, envelope } =
                run.login_start(&password)?;
            Run::sealed(first)?;
            let ikm = start_draws.last().cloned().ok_or("no ikmE")?;
            let ikm: [u8; 32] = ikm.try_into().map_err(|_| "ikmE")?;
            let (bytes, ke2) = Run::sealed(run.call(&envelope, Some(&ikm))?)?;
            run.begin_finish(state, start_draws, &password, &bytes, ke2)?
                .ok_or("the login failed")?;
            Ok(None)
        }
        "tampered-envelope" => {
            let envelope = run.login_start_unsent(&password)?;
            let tampered = tamper(&envelope, &inputs["tamper"])?;
            let answer = run.call(&tampered, None)?;
            run.mids.last_mut().expect("an exchange")["untamperedEnvelope"] =
                json!(hex::encode(&envelope));
            match answer {
                Answer::Rejected(e) => Ok(Some(e)),
                Answer::Sealed { .. } => Err("the HSM answered a tampered envelope".into()),
            }
        }
        "replayed-ke3" => {
            run.register(&password, &key()?)?;
            run.login(&password)?.ok_or("the login failed")?;
            // The LoginFinish envelope, sent again with its ikmE.
            let n = run.exchange_count() - 1;
            let envelope = hex_field(&run.outs[n], "envelope")?;
            let ikm = last_ikm_of(&run.draws, "client.login_finish")?;
            let (_, response) = Run::sealed(run.call(&envelope, Some(&ikm))?)?;
            run.outcome(response_outcome(&response));
            Ok(refusal(&response))
        }
        "wrong-ticket" | "swapped-ticket" => {
            run.register(&password, &key()?)?;
            let LoginStarted { state, answer, .. } = run.login_start(&password)?;
            let (bytes, ke2) = Run::sealed(answer)?;
            let Response::LoginChallenge { ticket, .. } = &ke2 else {
                return Err("no LoginChallenge".into());
            };
            let ticket = if scenario == "swapped-ticket" {
                // A second login of the same account; its ticket goes with the first KE3.
                match Run::sealed(run.login_start(&password)?.answer)?.1 {
                    Response::LoginChallenge { ticket, .. } => ticket,
                    _ => return Err("no second LoginChallenge".into()),
                }
            } else {
                tamper(ticket, &inputs["tamper"])?
            };
            run.draws.begin("client.login_finish");
            let (_, envelope) =
                state.receive(&mut run.draws, &bytes).map_err(|e| format!("{e:?}"))?;
            // The KE3 the client sealed, under the wrong ticket, sealed again.
            let env = RequestEnvelope::parse(&envelope).map_err(|e| e.to_string())?;
            let (plain, _) = envelope::open_request(&run.fleet_secret, &run.fleet_id, &env)
                .map_err(|e| e.to_string())?;
            let Ok(Request::LoginFinish { ke3, .. }) = Request::decode(&plain) else {
                return Err("no LoginFinish".into());
            };
            let request = Request::LoginFinish { ticket, ke3 };
            run.draws.begin("client.login_finish_resealed");
            let (envelope, pending) = envelope::seal_request(
                &mut run.draws,
                &run.fleet_id,
                env.key_id(),
                &run.public,
                &run.account,
                &request.encode(),
            )
            .map_err(|e| e.to_string())?;
            let ikm = run.draws.last_ikm()?;
            let (bytes, response) = Run::sealed(run.call(&envelope, Some(&ikm))?)?;
            let opened = pending.open(&bytes).map_err(|e| e.to_string())?;
            expect_eq("response", Response::decode(&opened).ok(), Some(response.clone()))?;
            run.outcome(response_outcome(&response));
            Ok(refusal(&response))
        }
        "register-start-twice" => {
            // One RegisterStart envelope sent twice: each answer evaluates the same blinded
            // element under its own fresh OPRF seed; the client finishes with the second.
            let from = run.draws.begin("client.register_start");
            let (state, envelope) = run.register_start(&password)?;
            let start_draws = run.draws.since(from);
            let ikm = run.draws.last_ikm()?;
            let (_, first) = Run::sealed(run.call(&envelope, Some(&ikm))?)?;
            let evaluation = |r: &Response| match r {
                Response::RegisterChallenge { registration_response, .. } => {
                    Ok(registration_response[..32].to_vec())
                }
                _ => Err("no RegisterChallenge".to_string()),
            };
            let first = evaluation(&first)?;
            // The second call is recorded by finish_registration.
            run.finish_registration(state, envelope, start_draws, &password, &key()?)?;
            let n = run.exchange_count() - 2;
            let second = hex_field(&run.mids[n], "responsePlaintext")?;
            let second = Response::decode(&second).map_err(|e| e.to_string())?;
            if evaluation(&second)? == first {
                return Err("two RegisterStarts evaluated the same OPRF key".into());
            }
            let session = run.login(&password)?.ok_or("the login failed")?;
            expect_eq("recovered K", session.key(), &key()?)?;
            Ok(None)
        }
        "expired-registration-ticket" | "foreign-registration-ticket" => {
            let foreign = if scenario == "foreign-registration-ticket" {
                // A registration ticket the vault issued for another account.
                let other_account = hex_field(inputs, "otherAccountId")?;
                run.draws.begin("client.register_start_other_account");
                let (_, envelope) = Registration::start(
                    &mut run.draws,
                    &run.endpoint,
                    account_id(&other_account),
                    &password,
                    None,
                )
                .map_err(|e| format!("{e:?}"))?;
                let ikm = run.draws.last_ikm()?;
                match Run::sealed(run.call(&envelope, Some(&ikm))?)?.1 {
                    Response::RegisterChallenge { registration_ticket, .. } => {
                        Some(registration_ticket)
                    }
                    _ => return Err("no RegisterChallenge for the other account".into()),
                }
            } else {
                None
            };
            run.draws.begin("client.register_start");
            let (state, envelope) = run.register_start(&password)?;
            let ikm = run.draws.last_ikm()?;
            let (bytes, _) = Run::sealed(run.call(&envelope, Some(&ikm))?)?;
            if foreign.is_none() {
                // The session lifetime passes before the client finishes.
                run.now += 301;
                run.client.push(json!({ "clockAdvancedBy": 301 }));
            }
            run.draws.begin("client.register_finish");
            let (_, envelope) =
                state.receive(&mut run.draws, &bytes, &key()?).map_err(|e| format!("{e:?}"))?;
            let envelope = match foreign {
                None => envelope,
                Some(ticket) => run.resealed(&envelope, |request| {
                    if let Request::RegisterFinish { registration_ticket, .. } = request {
                        *registration_ticket = ticket;
                    }
                })?,
            };
            let ikm = run.draws.last_ikm()?;
            let (_, response) = Run::sealed(run.call(&envelope, Some(&ikm))?)?;
            run.outcome(response_outcome(&response));
            Ok(refusal(&response))
        }
        "re-register-without-token" => {
            run.register(&password, &key()?)?;
            run.draws.begin("client.register_start");
            let (state, envelope) = run.register_start(&other()?)?;
            let ikm = run.draws.last_ikm()?;
            // RegisterStart is answered as for any account: a challenge under a fresh seed.
            let (bytes, _) = Run::sealed(run.call(&envelope, Some(&ikm))?)?;
            run.draws.begin("client.register_finish");
            let (state, envelope) =
                state.receive(&mut run.draws, &bytes, &key()?).map_err(|e| format!("{e:?}"))?;
            let ikm = run.draws.last_ikm()?;
            let (bytes, response) = Run::sealed(run.call(&envelope, Some(&ikm))?)?;
            match state.receive(&bytes) {
                Ok(_) => Err("a registered account was re-registered without a token".into()),
                Err(e) => {
                    let outcome = client_error(&e)?;
                    run.outcome(outcome);
                    Ok(refusal(&response))
                }
            }
        }
        "replay-after-delete" => {
            run.register(&password, &key()?)?;
            let first_finish = hex_field(&run.outs[1], "envelope")?;
            let first_ikm = last_ikm_of(&run.draws, "client.register_finish")?;
            let session = run.login(&password)?.ok_or("the login failed")?;
            run.draws.begin("client.delete");
            let (state, envelope) = session.delete(&mut run.draws).map_err(|e| format!("{e:?}"))?;
            let ikm = run.draws.last_ikm()?;
            let (bytes, _) = Run::sealed(run.call(&envelope, Some(&ikm))?)?;
            state.receive(&bytes).map_err(|e| format!("{e:?}"))?;
            run.outcome("deleted".into());
            // The first registration's RegisterFinish, replayed: the tombstone's version
            // makes it stale.
            let (_, response) = Run::sealed(run.call(&first_finish, Some(&first_ikm))?)?;
            run.outcome(response_outcome(&response));
            Ok(refusal(&response))
        }
        "undecodable-request" => {
            run.register(&password, &key()?)?;
            // Requests a byte away from decoding, made from requests the client built (a
            // decoder that lets one through meets a valid request and answers otherwise).
            let env = run.login_start_unsent(&password)?;
            let ke1 = run.plaintext_of(&env)?;
            run.draws.begin("client.register_start");
            let (_, env) = run.register_start(&password)?;
            let mut register_start = run.plaintext_of(&env)?;
            let mut unknown_kind = ke1.clone();
            unknown_kind[0] = 0x06;
            let mut trailing = ke1.clone();
            trailing.push(0x00);
            let cut = ke1[..ke1.len() - 1].to_vec();
            *register_start.last_mut().ok_or("empty RegisterStart")? = 0x02;
            let mut long_ticket = vec![0x04, 0x02, 0x01];
            long_ticket.extend_from_slice(&[0u8; 513 + 64]);
            let mut short_delete = vec![0x05];
            short_delete.extend_from_slice(&[0x42; 15]);
            let mut answers = Vec::new();
            for plain in
                [vec![], unknown_kind, trailing, cut, register_start, long_ticket, short_delete]
            {
                answers.push(run.send_crafted(&plain)?);
            }
            refused_alike(&answers, "invalid-request")
        }
        "invalid-register-start" => {
            run.draws.begin("client.register_start");
            let (_, env) = run.register_start(&password)?;
            let mut answers = Vec::new();
            // Not a canonical encoding; the identity element.
            for element in [[0xff; 32], [0; 32]] {
                answers.push(run.send_edited(&env, |r| {
                    if let Request::RegisterStart { registration_request, .. } = r {
                        *registration_request = element;
                    }
                })?);
            }
            refused_alike(&answers, "invalid-request")
        }
        "invalid-ke1" => {
            run.register(&password, &key()?)?;
            let env = run.login_start_unsent(&password)?;
            let mut answers = Vec::new();
            // The blinded element not canonical, the identity; the client key share not
            // canonical.
            for (at, element) in [(0, [0xff; 32]), (0, [0; 32]), (64, [0xff; 32])] {
                answers.push(run.send_edited(&env, |r| {
                    if let Request::LoginStart { ke1 } = r {
                        ke1[at..at + 32].copy_from_slice(&element);
                    }
                })?);
            }
            refused_alike(&answers, "invalid-request")
        }
        "invalid-registration-record" => {
            let env = run.register_finish_unsent(&password, &key()?)?;
            let mut answers = Vec::new();
            // client_public_key not canonical; the identity element.
            for element in [[0xff; 32], [0; 32]] {
                answers.push(run.send_edited(&env, |r| {
                    if let Request::RegisterFinish { registration_upload, .. } = r {
                        registration_upload[..32].copy_from_slice(&element);
                    }
                })?);
            }
            refused_alike(&answers, "invalid-request")
        }
        "non-policy-ksf-profile" => {
            let env = run.register_finish_unsent(&password, &key()?)?;
            let mut answers = Vec::new();
            // The mobile profile (known, not the policy's), unknown codes, and an unknown code
            // with a stale version: the profile is checked first.
            for (profile, version_step) in [(1, 0), (3, 0), (0, 0), (0xff, 1)] {
                answers.push(run.send_edited(&env, |r| {
                    if let Request::RegisterFinish { ksf_profile, record_version, .. } = r {
                        *ksf_profile = profile;
                        *record_version = record_version.wrapping_add(version_step);
                    }
                })?);
            }
            refused_alike(&answers, "invalid-request")
        }
        "locked-undecodable" => {
            run.lock_account(&password, &other()?, &key()?)?;
            let env = run.login_start_unsent(&password)?;
            let mut trailing = run.plaintext_of(&env)?;
            trailing.push(0x00);
            let answers = vec![run.send_crafted(&[])?, run.send_crafted(&trailing)?];
            refused_alike(&answers, "invalid-request")
        }
        "locked-invalid-element" => {
            run.lock_account(&password, &other()?, &key()?)?;
            let env = run.login_start_unsent(&password)?;
            let mut answers = vec![run.send_edited(&env, |r| {
                if let Request::LoginStart { ke1 } = r {
                    ke1[..32].copy_from_slice(&[0xff; 32]);
                }
            })?];
            let invalid = [
                Request::RegisterStart { registration_request: [0xff; 32], token: None },
                Request::RegisterFinish {
                    record_version: 0,
                    ksf_profile: 0,
                    registration_upload: Box::new([0xff; 192]),
                    sealed_key: [0; 61],
                    registration_ticket: Box::new([0; 100]),
                    token: None,
                },
                Request::LoginFinish { ticket: vec![0; 188], ke3: Box::new([0; 64]) },
                Request::Delete { token: [0x42; 16] },
            ];
            for request in invalid {
                answers.push(run.send_crafted(&request.encode())?);
            }
            refused_alike(&answers, "locked")
        }
        "expired-login-ticket" | "login-ticket-at-expiry" | "expired-login-ticket-locks" => {
            run.register(&password, &key()?)?;
            let LoginStarted { state, start_draws, answer, .. } = run.login_start(&password)?;
            let (bytes, ke2) = Run::sealed(answer)?;
            // The KE3 arrives at the ticket's not_after, or one second after it.
            run.advance(if scenario == "login-ticket-at-expiry" { 300 } else { 301 });
            let session = run.begin_finish(state, start_draws, &password, &bytes, ke2)?;
            if scenario == "login-ticket-at-expiry" {
                session.ok_or("the login at not_after failed")?;
                return Ok(None);
            }
            if session.is_some() {
                return Err("a login after its ticket expired".into());
            }
            run.last_refusal()
        }
        "ke1-again-after-expiry" => {
            run.register(&password, &key()?)?;
            let LoginStarted { state, start_draws, answer, envelope } =
                run.login_start(&password)?;
            let (bytes, ke2) = Run::sealed(answer)?;
            // The same KE1 envelope once its attempt is no longer live: not a retry but a new
            // charge, which drops the expired attempt and pends the same attempt id under the
            // next serial.
            run.advance(301);
            let ikm = start_draws.last().cloned().ok_or("no ikmE")?;
            let ikm: [u8; 32] = ikm.try_into().map_err(|_| "ikmE")?;
            Run::sealed(run.call(&envelope, Some(&ikm))?)?;
            // The KE3 of the first KE2: its ticket names the dropped serial.
            let session = run.begin_finish(state, start_draws, &password, &bytes, ke2)?;
            if session.is_some() {
                return Err("a login with the ticket of a dropped attempt".into());
            }
            run.last_refusal()
        }
        "failed-ke3-locks" => {
            run.register(&password, &key()?)?;
            let LoginStarted { state, answer, .. } = run.login_start(&password)?;
            let (bytes, _) = Run::sealed(answer)?;
            run.draws.begin("client.login_finish");
            let (_, env) = state.receive(&mut run.draws, &bytes).map_err(|e| format!("{e:?}"))?;
            let response = run.send_edited(&env, |r| {
                if let Request::LoginFinish { ke3, .. } = r {
                    ke3[0] ^= 1;
                }
            })?;
            Ok(refusal(&response))
        }
        "delete-not-authorised" => {
            // A made-up token: for an account with no record, a phantom, a registered account
            // that holds no token, and one that holds another.
            let made_up = Request::Delete { token: [0x42; 16] }.encode();
            let mut answers = vec![run.send_crafted(&made_up)?];
            if run.login(&password)?.is_some() {
                return Err("an unknown account logged in".into());
            }
            answers.push(run.send_crafted(&made_up)?);
            run.register(&password, &key()?)?;
            answers.push(run.send_crafted(&made_up)?);
            let session = run.login(&password)?.ok_or("the login failed")?;
            answers.push(run.send_crafted(&made_up)?);
            // The login's own Delete, then the same envelope again: the tombstone.
            let (envelope, ikm) = run.delete(session)?;
            let (_, response) = Run::sealed(run.call(&envelope, Some(&ikm))?)?;
            run.outcome(response_outcome(&response));
            answers.push(response);
            refused_alike(&answers, "not-authorised")
        }
        "delete-token-expired" | "delete-at-token-expiry" => {
            run.register(&password, &key()?)?;
            let session = run.login(&password)?.ok_or("the login failed")?;
            // The Delete arrives at the token's not_after, or one second after it.
            run.advance(if scenario == "delete-at-token-expiry" { 300 } else { 301 });
            run.delete(session)?;
            run.last_refusal()
        }
        "phantom-any-token" => {
            if run.login(&password)?.is_some() {
                return Err("an unknown account logged in".into());
            }
            let env = run.register_finish_unsent(&password, &key()?)?;
            let response = run.send_edited(&env, |r| {
                if let Request::RegisterFinish { token, .. } = r {
                    *token = Some([0x42; 16]);
                }
            })?;
            match response {
                Response::Registered { .. } => Ok(None),
                other => Err(format!("a phantom's registration with a token: {other:?}")),
            }
        }
        other => Err(format!("unknown scenario {other:?}")),
    }
}

/// Every answer a refusal for `reason`: the case's error.
pub(super) fn refused_alike(answers: &[Response], reason: &str) -> Result<Option<String>, String> {
    for answer in answers {
        expect_eq("refusal", refusal(answer).as_deref(), Some(reason))?;
    }
    Ok(Some(reason.to_owned()))
}

impl Run {
    /// Opens a request envelope the client made, changes the request with `edit`, and seals it
    /// again (drawing a new `ikmE` under the step `client.resealed`).
    pub(super) fn resealed(
        &mut self,
        envelope: &[u8],
        edit: impl FnOnce(&mut Request),
    ) -> Result<Vec<u8>, String> {
        let env = RequestEnvelope::parse(envelope).map_err(|e| e.to_string())?;
        let (plain, _) = envelope::open_request(&self.fleet_secret, &self.fleet_id, &env)
            .map_err(|e| e.to_string())?;
        let mut request = Request::decode(&plain).map_err(|e| e.to_string())?;
        edit(&mut request);
        self.draws.begin("client.resealed");
        let (envelope, _) = envelope::seal_request(
            &mut self.draws,
            &self.fleet_id,
            env.key_id(),
            &self.public,
            &self.account,
            &request.encode(),
        )
        .map_err(|e| e.to_string())?;
        Ok(envelope)
    }

    /// The plaintext of a request envelope the client made, opened with the fleet's secret.
    pub(super) fn plaintext_of(&self, envelope: &[u8]) -> Result<Vec<u8>, String> {
        let env = RequestEnvelope::parse(envelope).map_err(|e| e.to_string())?;
        let (plain, _) = envelope::open_request(&self.fleet_secret, &self.fleet_id, &env)
            .map_err(|e| e.to_string())?;
        Ok(plain.to_vec())
    }

    /// Seals `plaintext` (any bytes, a request or not) for the case's account, drawing its
    /// `ikmE` under the step `client.crafted`, sends it and records the response it gets as
    /// the outcome (no client state waits for it). Returns the response.
    pub(super) fn send_crafted(&mut self, plaintext: &[u8]) -> Result<Response, String> {
        self.draws.begin("client.crafted");
        let (key_id, public) = self.endpoint.key();
        let (envelope, pending) = envelope::seal_request(
            &mut self.draws,
            &self.fleet_id,
            key_id,
            &public,
            &self.account,
            plaintext,
        )
        .map_err(|e| e.to_string())?;
        let ikm = self.draws.last_ikm()?;
        let (bytes, response) = Self::sealed(self.call(&envelope, Some(&ikm))?)?;
        let opened = pending.open(&bytes).map_err(|e| e.to_string())?;
        expect_eq("response", Response::decode(&opened).ok(), Some(response.clone()))?;
        self.outcome(response_outcome(&response));
        Ok(response)
    }

    /// Opens a request envelope the client made, changes the request with `edit`, and sends
    /// it sealed again as [`Run::send_crafted`] does.
    pub(super) fn send_edited(
        &mut self,
        envelope: &[u8],
        edit: impl FnOnce(&mut Request),
    ) -> Result<Response, String> {
        let plain = self.plaintext_of(envelope)?;
        let mut request = Request::decode(&plain).map_err(|e| e.to_string())?;
        edit(&mut request);
        self.send_crafted(&request.encode())
    }

    /// A `RegisterStart` sent and answered, then the client's `RegisterFinish`, not sent.
    pub(super) fn register_finish_unsent(
        &mut self,
        password: &[u8],
        key: &BackupKey,
    ) -> Result<Vec<u8>, String> {
        self.draws.begin("client.register_start");
        let (state, envelope) = self.register_start(password)?;
        let ikm = self.draws.last_ikm()?;
        let (bytes, _) = Self::sealed(self.call(&envelope, Some(&ikm))?)?;
        self.draws.begin("client.register_finish");
        let (_, envelope) =
            state.receive(&mut self.draws, &bytes, key).map_err(|e| format!("{e:?}"))?;
        Ok(envelope)
    }

    /// The clock of the case moves on by `seconds`.
    pub(super) fn advance(&mut self, seconds: u64) {
        self.now += seconds;
        self.client.push(json!({ "clockAdvancedBy": seconds }));
    }

    /// Locks the account (a budget of 1): registration, one wrong password, and once that
    /// attempt expired, a KE1 that finds nothing left and locks.
    pub(super) fn lock_account(
        &mut self,
        password: &[u8],
        other: &[u8],
        key: &BackupKey,
    ) -> Result<(), String> {
        self.register(password, key)?;
        if self.login(other)?.is_some() {
            return Err("a wrong password logged in".into());
        }
        self.advance(301);
        if self.login(password)?.is_some() {
            return Err("a spent account logged in".into());
        }
        let record = self.records.get(&self.account).ok_or("no record")?;
        expect_eq("the record locked", record.encode()[1], 3)?;
        Ok(())
    }

    /// The Delete of a logged-in session, sent, and the client's outcome. Returns the envelope
    /// and its `ikmE`.
    pub(super) fn delete(&mut self, session: LoggedIn) -> Result<(Vec<u8>, [u8; 32]), String> {
        self.draws.begin("client.delete");
        let (state, envelope) = session.delete(&mut self.draws).map_err(|e| format!("{e:?}"))?;
        let ikm = self.draws.last_ikm()?;
        let (bytes, _) = Self::sealed(self.call(&envelope, Some(&ikm))?)?;
        let outcome = match state.receive(&bytes) {
            Ok(()) => "deleted".to_owned(),
            Err(e) => client_error(&e)?,
        };
        self.outcome(outcome);
        Ok((envelope, ikm))
    }

    /// The refusal reason of the latest response.
    pub(super) fn last_refusal(&self) -> Result<Option<String>, String> {
        let plain = hex_field(self.mids.last().ok_or("no exchange")?, "responsePlaintext")?;
        Ok(refusal(&Response::decode(&plain).map_err(|e| e.to_string())?))
    }

    /// `Login::start` only, not sent: for envelopes that are tampered with first.
    pub(super) fn login_start_unsent(&mut self, password: &[u8]) -> Result<Vec<u8>, String> {
        self.draws.begin("client.login_start");
        let (_, envelope) =
            Login::start(&mut self.draws, &self.endpoint, account_id(&self.account), password)
                .map_err(|e| format!("{e:?}"))?;
        Ok(envelope)
    }
}

/// The `ikmE` of the latest run of `step`: its last draw.
pub(super) fn last_ikm_of(draws: &Draws, step: &str) -> Result<[u8; 32], String> {
    let prefix = format!("{step}.draw[");
    let last = draws
        .log
        .iter()
        .enumerate()
        .filter(|(_, d)| d.0.starts_with(&prefix))
        .map(|(i, _)| i)
        .next_back()
        .ok_or("no such step")?;
    draws.log[last].1.clone().try_into().map_err(|_| "ikmE is not 32 bytes".into())
}

/// Applies `{"offset", "xor"}`, `{"truncateTo"}` or `{"append"}` to `bytes`.
pub(super) fn tamper(bytes: &[u8], how: &Value) -> Result<Vec<u8>, String> {
    let mut out = bytes.to_vec();
    if how.get("append").is_some() {
        out.extend_from_slice(&hex_field(how, "append")?);
        return Ok(out);
    }
    if let Some(len) = how["truncateTo"].as_u64() {
        out.truncate(usize::try_from(len).map_err(|e| e.to_string())?);
        return Ok(out);
    }
    let offset = usize::try_from(u64_field(how, "offset")?).map_err(|e| e.to_string())?;
    let mask = u8::try_from(u64_field(how, "xor")?).map_err(|e| e.to_string())?;
    *out.get_mut(offset).ok_or("tamper offset out of range")? ^= mask;
    Ok(out)
}

/// Runs one journey case from its config and inputs: the whole case but tcId, comment, flags.
pub(super) fn run_journey(
    scenario: &str,
    config: &Value,
    inputs: &Value,
    source: Source,
) -> Result<Value, String> {
    let suite = suite_config();
    for (field, value) in suite.as_object().expect("an object") {
        expect_eq(field, &config[field], value)?;
    }
    let mut run = Run::new(config, source)?;
    let result = journey(scenario, &mut run, inputs);
    run.draws.finish()?;
    let error = result?;
    let mut inputs = inputs.clone();
    inputs["draws"] = run.draws.draws_json();
    let mut case = json!({
        "result": if error.is_some() { "invalid" } else { "valid" },
        "scenario": scenario,
        "config": config,
        "inputs": inputs,
        "intermediates": {
            "hsmSecrets": hex::encode(&run.hsm_secrets),
            "fleetPublicKey": hex::encode(run.public.as_bytes()),
            "exchanges": run.mids,
        },
        "outputs": { "exchanges": run.outs, "client": run.client },
    });
    if let Some(error) = error {
        case["error"] = json!(error);
    }
    Ok(case)
}

/// The Argon2id parameters of a profile, as the config states them.
pub(super) fn ksf_params(profile: KsfProfile) -> String {
    let (m, t, p) = profile.costs();
    let name = match profile {
        KsfProfile::Mobile => "the Mobile profile",
        KsfProfile::Fast => "the Fast profile, for tests and vectors only",
    };
    format!(
        "Argon2id version 0x13, m = {m} KiB, t = {t}, p = {p}, 64-byte output, salt of 16 zero bytes ({name}, code {})",
        profile.code()
    )
}

/// The suite fields of every journey config (checked, not varied).
pub(super) fn suite_config() -> Value {
    json!({
        "opaque": "OPAQUE-3DH",
        "oprf": "ristretto255-SHA512",
        "group": "ristretto255",
        "hash": "SHA-512",
        "ksf": "Argon2id",
        "context": hex::encode(CONTEXT),
        "hpke": "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM",
    })
}
