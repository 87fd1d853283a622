//! Cases of the sealed channel alone (spec 4.4): given keys, plaintexts and nonces.

use super::*;

pub(super) fn run_channel(config: &Value, inputs: &Value) -> Result<Value, String> {
    let fleet_id = hex_field(config, "fleetId")?;
    let account = hex_field(config, "accountId")?;
    let key_id = u8::try_from(u64_field(config, "fleetKeyId")?).map_err(|e| e.to_string())?;
    let ikm_r: [u8; 32] = hex_field(inputs, "fleetKeyIkm")?.try_into().map_err(|_| "ikmR")?;
    let ikm_e: [u8; 32] = hex_field(inputs, "ikmE")?.try_into().map_err(|_| "ikmE")?;
    let nonce: [u8; 32] =
        hex_field(inputs, "responseNonce")?.try_into().map_err(|_| "responseNonce")?;
    let request = hex_field(inputs, "requestPlaintext")?;
    let response_plain = hex_field(inputs, "responsePlaintext")?;
    let open_fleet = match inputs.get("hsmFleetId") {
        Some(_) => hex_field(inputs, "hsmFleetId")?,
        None => fleet_id.clone(),
    };
    let secret = FleetSecretKey::derive(&ikm_r);
    let public = secret.public_key();
    let mut intermediates = json!({ "fleetSecretKey": hex::encode(*secret.to_bytes()) });
    // An id out of its bounds has no info (spec 4.4).
    if let Ok(info) = envelope::request_info(envelope::VERSION, &fleet_id, &account, key_id) {
        intermediates["info"] = json!(hex::encode(info));
    }
    let mut outputs = json!({ "fleetPublicKey": hex::encode(public.as_bytes()) });
    let sealed = envelope::seal_request_with_ephemeral_ikm(
        &ikm_e, &fleet_id, key_id, &public, &account, &request,
    );
    let (envelope, pending) = match sealed {
        Ok(sealed) => sealed,
        // The client refuses to seal (spec 4.4): there is no envelope, and no HSM sees one.
        Err(
            e @ (ChannelError::InvalidFleetId(_)
            | ChannelError::InvalidAccountId(_)
            | ChannelError::PlaintextTooLong(_)),
        ) => {
            return Ok(json!({
                "result": "invalid",
                "error": channel_error(&e),
                "scenario": "channel",
                "config": config,
                "inputs": inputs,
                "intermediates": intermediates,
                "outputs": outputs,
            }));
        }
        Err(e) => return Err(e.to_string()),
    };
    let parsed = RequestEnvelope::parse(&envelope).map_err(|e| e.to_string())?;
    // The clear fields a relay reads (spec 4.4) are the ones sealed.
    expect_eq("the envelope's key id", parsed.key_id(), key_id)?;
    expect_eq("the envelope's account id", parsed.account_id(), &account[..])?;
    expect_eq(
        "the envelope's ciphertext length",
        parsed.ciphertext().len(),
        request.len() + envelope::TAG_LEN,
    )?;
    outputs["enc"] = json!(hex::encode(parsed.enc()));
    outputs["envelope"] = json!(hex::encode(&envelope));
    let mut error = None;
    // The envelope the HSM is given: the sealed one, or one a relay changed.
    let delivered = match inputs.get("tamperRequest") {
        Some(how) => tamper(&envelope, how)?,
        None => envelope.clone(),
    };
    let opened = RequestEnvelope::parse(&delivered)
        .and_then(|d| envelope::open_request(&secret, &open_fleet, &d));
    match opened {
        Err(e) => error = Some(channel_error(&e)),
        Ok((opened, sealer)) => {
            expect_eq("opened request", hex::encode(&*opened), hex::encode(&request))?;
            let response =
                sealer.seal_with_nonce(&nonce, &response_plain).map_err(|e| e.to_string())?;
            outputs["response"] = json!(hex::encode(&response));
            let delivered = match inputs.get("tamperResponse") {
                Some(how) => tamper(&response, how)?,
                None => response,
            };
            match pending.open(&delivered) {
                Ok(plain) => expect_eq(
                    "opened response",
                    hex::encode(&*plain),
                    hex::encode(&response_plain),
                )?,
                Err(e) => error = Some(channel_error(&e)),
            }
        }
    }
    let mut case = json!({
        "result": if error.is_some() { "invalid" } else { "valid" },
        "scenario": "channel",
        "config": config,
        "inputs": inputs,
        "intermediates": intermediates,
        "outputs": outputs,
    });
    if let Some(error) = error {
        case["error"] = json!(error);
    }
    Ok(case)
}
