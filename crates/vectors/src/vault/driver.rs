//! The small in-memory driver the journey cases run the real client and HSM through (spec
//! 4.10.2, 4.11).

use super::*;
use e2ee_backup_vault::{AccountId, FleetId};

/// One answer of the HSM.
pub(super) enum Answer {
    Sealed { bytes: Vec<u8>, response: Response },
    Rejected(String),
}

/// What `Login::start` and its KE1 exchange leave: the client state, the draws of the step
/// (ikmE last), the HSM's answer and the envelope sent.
pub(super) struct LoginStarted {
    pub(super) state: AwaitingLoginChallenge,
    pub(super) start_draws: Vec<Vec<u8>>,
    pub(super) answer: Answer,
    pub(super) envelope: Vec<u8>,
}

pub(super) struct Run {
    pub(super) draws: Draws,
    pub(super) fleet_id: Vec<u8>,
    pub(super) account: Vec<u8>,
    pub(super) now: u64,
    pub(super) hsm: Hsm,
    pub(super) endpoint: Endpoint,
    pub(super) public: FleetPublicKey,
    pub(super) fleet_secret: FleetSecretKey,
    pub(super) hsm_secrets: Vec<u8>,
    pub(super) records: BTreeMap<Vec<u8>, AccountRecord>,
    pub(super) mids: Vec<Value>,
    pub(super) outs: Vec<Value>,
    pub(super) client: Vec<Value>,
    /// The export key of the latest registration.
    pub(super) export_key: Option<Vec<u8>>,
}

pub(super) fn u64_field(v: &Value, field: &str) -> Result<u64, String> {
    v[field].as_u64().ok_or_else(|| format!("missing number {field}"))
}

pub(super) fn key_field(v: &Value, field: &str) -> Result<BackupKey, String> {
    let bytes: [u8; 32] =
        hex_field(v, field)?.try_into().map_err(|_| format!("{field} is not 32 bytes"))?;
    Ok(BackupKey::from_bytes(bytes))
}

impl Run {
    pub(super) fn new(config: &Value, source: Source) -> Result<Self, String> {
        let fleet_id = hex_field(config, "fleetId")?;
        let fleet = FleetId::new(&fleet_id).map_err(|e| format!("fleetId: {e}"))?;
        let account = hex_field(config, "accountId")?;
        AccountId::new(&account).map_err(|e| format!("accountId: {e}"))?;
        let budget = u8::try_from(u64_field(config, "budget")?).map_err(|_| "budget too big")?;
        let ksf_profile = u8::try_from(u64_field(config, "ksfProfile")?)
            .ok()
            .and_then(KsfProfile::from_code)
            .ok_or("unknown ksfProfile")?;
        expect_eq(
            "ksfParams",
            config["ksfParams"].as_str(),
            Some(ksf_params(ksf_profile).as_str()),
        )?;
        let mut draws = Draws::new(source);
        draws.begin("hsm.setup");
        let secrets = HsmSecrets::generate(&mut draws, fleet);
        let hsm_secrets = secrets.to_bytes().to_vec();
        // to_bytes ends with count (1) || key_id || X25519 secret [32].
        let tail = &hsm_secrets[hsm_secrets.len() - 34..];
        expect_eq("channel key count and id", (tail[0], tail[1]), (1, 1))?;
        let fleet_secret = FleetSecretKey::from_bytes(tail[2..].try_into().expect("32 bytes"))
            .map_err(|e| e.to_string())?;
        let (key_id, public) = secrets.public_keys()[0];
        expect_eq("fleetKeyId", u64::from(key_id), u64_field(config, "fleetKeyId")?)?;
        let hsm_config = HsmConfig {
            budget,
            ksf_profile,
            session_lifetime: u64_field(config, "sessionLifetime")?,
            token_lifetime: u64_field(config, "tokenLifetime")?,
        };
        let hsm = Hsm::new(secrets, hsm_config).map_err(|e| e.to_string())?;
        let endpoint = Endpoint::new(fleet, key_id, public).accepting_fast_ksf();
        Ok(Self {
            draws,
            fleet_id,
            account,
            now: u64_field(config, "now")?,
            hsm,
            endpoint,
            public,
            fleet_secret,
            hsm_secrets,
            records: BTreeMap::new(),
            mids: Vec::new(),
            outs: Vec::new(),
            client: Vec::new(),
            export_key: None,
        })
    }

    pub(super) fn record_json(&self) -> Value {
        self.records.get(&self.account).map_or(Value::Null, |r| json!(hex::encode(r.encode())))
    }

    pub(super) fn outcome(&mut self, outcome: String) {
        self.client.push(json!({ "outcome": outcome }));
    }

    /// Sends `envelope` (sealed with `ikm` as its `ikmE`, if known) to the HSM through the
    /// driver, and records the exchange.
    pub(super) fn call(
        &mut self,
        envelope: &[u8],
        ikm: Option<&[u8; 32]>,
    ) -> Result<Answer, String> {
        let mut mid = json!({});
        let mut out = json!({ "envelope": hex::encode(envelope) });
        // The plaintext, opened beside the HSM with the fleet's secret key.
        let parsed = RequestEnvelope::parse(envelope).ok();
        let plain = parsed.as_ref().and_then(|e| {
            envelope::open_request(&self.fleet_secret, &self.fleet_id, e).ok().map(|p| p.0.to_vec())
        });
        if let (Some(p), Some(e)) = (&plain, &parsed) {
            mid["requestPlaintext"] = json!(hex::encode(p));
            // A plaintext that does not decode (spec 4.7, "Decoding") has no request name.
            if let Ok(request) = Request::decode(p) {
                mid["request"] = json!(request.name());
                if let Request::LoginStart { ke1 } = &request {
                    mid["attemptId"] =
                        json!(hex::encode(e2ee_backup_vault::internal::ticket::attempt_id(
                            e.account_id(),
                            ke1.as_ref()
                        )));
                }
            }
        }
        let answer = match self.hsm.open(envelope) {
            Err(e) => {
                out["error"] = json!(hsm_error(&e));
                out["recordChange"] = json!("none");
                Answer::Rejected(hsm_error(&e))
            }
            Ok(opened) => {
                let step =
                    format!("hsm.{}", snake(opened.request_name().unwrap_or("InvalidRequest")));
                let record = self.records.get(opened.account()).cloned();
                let (command, pending) = opened.into_command(self.now);
                let mut change = "none";
                let decision = match command {
                    Err(refusal) => refusal,
                    Ok(command) => {
                        let records = &mut self.records;
                        let stored = self.hsm.apply(&command, record).persist(|c| {
                            match c {
                                RecordChange::Put(r) => {
                                    records.insert(command.account().to_vec(), r.clone());
                                    change = "put";
                                }
                                RecordChange::Delete => {
                                    records.remove(command.account());
                                    change = "delete";
                                }
                            }
                            Ok::<(), Infallible>(())
                        });
                        let Ok(decision) = stored;
                        decision
                    }
                };
                let reply = pending.reply(decision);
                self.draws.begin(&step);
                let bytes = self.hsm.seal(reply, &mut self.draws);
                out["response"] = json!(hex::encode(&bytes));
                out["recordChange"] = json!(change);
                // The response plaintext: the pending state of the request, rebuilt from ikmE.
                let (Some(ikm), Some(p), Some(e)) = (ikm, &plain, &parsed) else {
                    return Err("a sealed response to a request whose ikmE is unknown".into());
                };
                let (again, pending) = envelope::seal_request_with_ephemeral_ikm(
                    ikm,
                    &self.fleet_id,
                    e.key_id(),
                    &self.public,
                    e.account_id(),
                    p,
                )
                .map_err(|e| e.to_string())?;
                expect_eq(
                    "envelope resealed with its ikmE",
                    hex::encode(again),
                    hex::encode(envelope),
                )?;
                let response_plain = pending.open(&bytes).map_err(|e| e.to_string())?;
                mid["responsePlaintext"] = json!(hex::encode(&response_plain));
                let response = Response::decode(&response_plain).map_err(|e| e.to_string())?;
                Answer::Sealed { bytes, response }
            }
        };
        out["record"] = self.record_json();
        self.mids.push(mid);
        self.outs.push(out);
        Ok(answer)
    }

    pub(super) fn sealed(answer: Answer) -> Result<(Vec<u8>, Response), String> {
        match answer {
            Answer::Sealed { bytes, response } => Ok((bytes, response)),
            Answer::Rejected(e) => Err(format!("the HSM rejected a request: {e}")),
        }
    }

    /// The client's RegisterStart for the case's account, without a token.
    pub(super) fn register_start(
        &mut self,
        password: &[u8],
    ) -> Result<(AwaitingRegisterChallenge, Vec<u8>), String> {
        Registration::start(
            &mut self.draws,
            &self.endpoint,
            account_id(&self.account),
            password,
            None,
        )
        .map_err(|e| format!("{e:?}"))
    }

    /// A registration: `Registration::start` (or `change_password`), then its finish.
    pub(super) fn register(&mut self, password: &[u8], key: &BackupKey) -> Result<(), String> {
        let from = self.draws.begin("client.register_start");
        let (state, envelope) = self.register_start(password)?;
        let start_draws = self.draws.since(from);
        self.finish_registration(state, envelope, start_draws, password, key)
    }

    pub(super) fn change_password(
        &mut self,
        session: LoggedIn,
        password: &[u8],
        expected_key: &BackupKey,
    ) -> Result<(), String> {
        let from = self.draws.begin("client.change_password");
        let (state, key, envelope) = session
            .change_password(&mut self.draws, password, None)
            .map_err(|e| format!("{e:?}"))?;
        expect_eq("the key change_password keeps", &key, expected_key)?;
        let start_draws = self.draws.since(from);
        self.finish_registration(state, envelope, start_draws, password, &key)
    }

    pub(super) fn finish_registration(
        &mut self,
        state: AwaitingRegisterChallenge,
        envelope: Vec<u8>,
        start_draws: Vec<Vec<u8>>,
        password: &[u8],
        key: &BackupKey,
    ) -> Result<(), String> {
        let blind = start_draws;
        let ikm: [u8; 32] =
            blind.last().cloned().unwrap_or_default().try_into().map_err(|_| "ikmE")?;
        let (response, challenge) = Self::sealed(self.call(&envelope, Some(&ikm))?)?;
        let from = self.draws.begin("client.register_finish");
        let (state, envelope) =
            state.receive(&mut self.draws, &response, key).map_err(|e| format!("{e:?}"))?;
        let finish_draws = self.draws.since(from);
        let ikm = self.draws.last_ikm()?;
        let (response, _) = Self::sealed(self.call(&envelope, Some(&ikm))?)?;
        let budget = state.receive(&response).map_err(|e| format!("{e:?}"))?;
        self.outcome(format!("registered budget={budget}"));

        // The intermediates, recomputed from the recorded draws with opaque-ke alone: the
        // blind is every draw of the start step but ikmE, then the envelope nonce and the
        // sealed-key nonce.
        let Response::RegisterChallenge {
            registration_response, record_version, ksf_profile, ..
        } = challenge
        else {
            return Err("no RegisterChallenge".into());
        };
        let mut given = Given::new(blind[..blind.len() - 1].to_vec());
        let started = ClientRegistration::<VaultSuite>::start(&mut given, password)
            .map_err(|e| e.to_string())?;
        given.spent()?;
        let ksf = KsfProfile::from_code(ksf_profile).ok_or("ksf profile")?.argon2();
        let ids = Identities { account: &self.account, fleet: &self.fleet_id };
        let [nonce, seal_nonce, _ikm] = <[Vec<u8>; 3]>::try_from(finish_draws)
            .map_err(|_| "client.register_finish does not make three draws")?;
        let mut given = Given::new(vec![nonce]);
        let finished = started
            .state
            .finish(
                &mut given,
                password,
                RegistrationResponse::deserialize(&registration_response)
                    .map_err(|e| e.to_string())?,
                ClientRegistrationFinishParameters::new(ids.opaque(), Some(&ksf)),
            )
            .map_err(|e| e.to_string())?;
        given.spent()?;
        let export_key = finished.export_key.to_vec();
        let upload = finished.message.serialize().to_vec();
        let seal_nonce: [u8; 12] = seal_nonce.try_into().map_err(|_| "sealed-key nonce")?;
        let sealed =
            wrap::seal_key_with_nonce(&seal_nonce, &export_key, &self.account, record_version, key);
        let mid = self.mids.last_mut().expect("an exchange");
        let plain = hex_field(mid, "requestPlaintext")?;
        let Ok(Request::RegisterFinish { registration_upload, sealed_key, .. }) =
            Request::decode(&plain)
        else {
            return Err("no RegisterFinish".into());
        };
        expect_eq("registration record", hex::encode(&upload), hex::encode(*registration_upload))?;
        expect_eq("sealed K", hex::encode(&sealed), hex::encode(sealed_key))?;
        mid["exportKey"] = json!(hex::encode(&export_key));
        mid["wrappingKey"] = json!(hex::encode(*vault_wrapping_key(&export_key)));
        mid["registrationRecord"] = json!(hex::encode(&upload));
        self.export_key = Some(export_key);
        Ok(())
    }

    /// `Login::start` and the KE1 exchange. Returns the client state, the KE1 draws and the
    /// answer.
    pub(super) fn login_start(&mut self, password: &[u8]) -> Result<LoginStarted, String> {
        let from = self.draws.begin("client.login_start");
        let (state, envelope) =
            Login::start(&mut self.draws, &self.endpoint, account_id(&self.account), password)
                .map_err(|e| format!("{e:?}"))?;
        let start_draws = self.draws.since(from);
        let ikm = self.draws.last_ikm()?;
        let answer = self.call(&envelope, Some(&ikm))?;
        Ok(LoginStarted { state, start_draws, answer, envelope })
    }

    /// A whole login. Returns the session when it succeeds.
    pub(super) fn login(&mut self, password: &[u8]) -> Result<Option<LoggedIn>, String> {
        let LoginStarted { state, start_draws, answer, .. } = self.login_start(password)?;
        let Answer::Sealed { bytes, response: ke2 } = answer else {
            return Err("KE1 rejected".into());
        };
        self.begin_finish(state, start_draws, password, &bytes, ke2)
    }

    pub(super) fn begin_finish(
        &mut self,
        state: AwaitingLoginChallenge,
        start_draws: Vec<Vec<u8>>,
        password: &[u8],
        bytes: &[u8],
        ke2: Response,
    ) -> Result<Option<LoggedIn>, String> {
        let from = self.draws.begin("client.login_finish");
        let (state, envelope) = match state.receive(&mut self.draws, bytes) {
            Ok(next) => next,
            Err(e) => {
                let outcome = client_error(&e)?;
                self.outcome(outcome);
                return Ok(None);
            }
        };
        let finish_draws = self.draws.since(from);
        let ikm = self.draws.last_ikm()?;
        let (response, _) = Self::sealed(self.call(&envelope, Some(&ikm))?)?;
        let export_key = self.login_export_key(password, &start_draws, &finish_draws, &ke2)?;
        self.mids.last_mut().expect("an exchange")["exportKey"] = json!(hex::encode(&export_key));
        match state.receive(&response) {
            Ok(session) => {
                expect_eq("login export key", Some(&export_key), self.export_key.as_ref())?;
                self.client.push(json!({
                    "outcome": format!("logged-in remaining={}", session.remaining()),
                    "recoveredKey": hex::encode(session.key().expose_secret()),
                }));
                Ok(Some(session))
            }
            Err(e) => {
                let outcome = client_error(&e)?;
                self.outcome(outcome);
                Ok(None)
            }
        }
    }

    /// The export key of a login, recomputed with opaque-ke from the recorded draws; checks
    /// that KE1 and KE3 are the ones the client sent.
    pub(super) fn login_export_key(
        &self,
        password: &[u8],
        start_draws: &[Vec<u8>],
        finish_draws: &[Vec<u8>],
        ke2: &Response,
    ) -> Result<Vec<u8>, String> {
        let Response::LoginChallenge { ke2, ksf_profile, .. } = ke2 else {
            return Err("no LoginChallenge".into());
        };
        let mut given = Given::new(start_draws[..start_draws.len() - 1].to_vec());
        let started =
            ClientLogin::<VaultSuite>::start(&mut given, password).map_err(|e| e.to_string())?;
        given.spent()?;
        let ke1 = started.message.serialize().to_vec();
        let ksf = KsfProfile::from_code(*ksf_profile).ok_or("ksf profile")?.argon2();
        let ids = Identities { account: &self.account, fleet: &self.fleet_id };
        let mut given = Given::new(finish_draws[..finish_draws.len() - 1].to_vec());
        let finished = started
            .state
            .finish(
                &mut given,
                password,
                CredentialResponse::deserialize(ke2.as_ref()).map_err(|e| e.to_string())?,
                ClientLoginFinishParameters::new(Some(CONTEXT), ids.opaque(), Some(&ksf)),
            )
            .map_err(|e| e.to_string())?;
        given.spent()?;
        let ke3 = finished.message.serialize().to_vec();
        // The KE1 and KE3 the client sent, from the opened plaintexts.
        let sent: Vec<Request> = self
            .mids
            .iter()
            .filter_map(|m| m["requestPlaintext"].as_str())
            .filter_map(|p| Request::decode(&hex::decode(p).ok()?).ok())
            .collect();
        let ke1_sent = sent
            .iter()
            .any(|r| matches!(r, Request::LoginStart { ke1: k } if k.as_ref()[..] == ke1[..]));
        let ke3_sent = sent
            .iter()
            .any(|r| matches!(r, Request::LoginFinish { ke3: k, .. } if k.as_ref()[..] == ke3[..]));
        if !(ke1_sent && ke3_sent) {
            return Err("opaque-ke on the recorded draws does not give the KE1 and KE3 sent".into());
        }
        Ok(finished.export_key.to_vec())
    }

    pub(super) fn exchange_count(&self) -> usize {
        self.outs.len()
    }
}
