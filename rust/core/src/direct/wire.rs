//! The bytes of the commands the direct path sends (TPM 2.0 Part 3: GetCapability, ReadPublic,
//! StartAuthSession, HMAC, FlushContext; for key files CreatePrimary, Create and Load) and a reader for their responses that checks every length against what is
//! left, so a short, long or garbled answer is an error and never a panic or an over-read.

/// Command codes (Part 2, 6.5.2).
pub const CC_START_AUTH_SESSION: u32 = 0x176;
pub const CC_HMAC: u32 = 0x155;
pub const CC_FLUSH_CONTEXT: u32 = 0x165;
pub const CC_READ_PUBLIC: u32 = 0x173;
pub const CC_GET_CAPABILITY: u32 = 0x17A;
pub const CC_CREATE_PRIMARY: u32 = 0x131;
pub const CC_CREATE: u32 = 0x153;
pub const CC_LOAD: u32 = 0x157;

/// The command's name, for messages.
#[cfg(windows)]
pub fn command_name(code: u32) -> &'static str {
    match code {
        CC_START_AUTH_SESSION => "TPM2_StartAuthSession",
        CC_HMAC => "TPM2_HMAC",
        CC_FLUSH_CONTEXT => "TPM2_FlushContext",
        CC_READ_PUBLIC => "TPM2_ReadPublic",
        CC_GET_CAPABILITY => "TPM2_GetCapability",
        CC_CREATE_PRIMARY => "TPM2_CreatePrimary",
        CC_CREATE => "TPM2_Create",
        CC_LOAD => "TPM2_Load",
        _ => "(a command this project does not send)",
    }
}

/// The owner hierarchy, and the password "session" (Part 2, 7.4).
pub const RH_OWNER: u32 = 0x4000_0001;
const RS_PW: u32 = 0x4000_0009;

/// The capability of handles in use (Part 2, 6.12).
pub const CAP_HANDLES: u32 = 0x0000_0001;

const ST_NO_SESSIONS: u16 = 0x8001;
const ST_SESSIONS: u16 = 0x8002;
const RH_NULL: u32 = 0x4000_0007;
const SE_HMAC: u8 = 0x00;
const SE_POLICY: u8 = 0x01;
const ALG_AES: u16 = 0x0006;
const ALG_CFB: u16 = 0x0043;
const ALG_SHA256: u16 = 0x000B;
const ALG_NULL: u16 = 0x0010;

/// Session attributes (Part 2, 8.4).
pub const CONTINUE_SESSION: u8 = 0x01;
pub const DECRYPT: u8 = 0x20;
pub const ENCRYPT: u8 = 0x40;

/// The largest response the direct path accepts (a TPM's is at most a few KiB).
pub const MAX_RESPONSE: usize = 4096;

/// A command under construction: header first, the size filled in by `finish`.
pub struct Command(Vec<u8>);

impl Command {
    fn new(tag: u16, code: u32) -> Command {
        let mut bytes = Vec::with_capacity(256);
        bytes.extend_from_slice(&tag.to_be_bytes());
        bytes.extend_from_slice(&[0; 4]);
        bytes.extend_from_slice(&code.to_be_bytes());
        Command(bytes)
    }

    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A TPM2B: a 16-bit size, then the bytes.
    fn sized(&mut self, bytes: &[u8]) -> &mut Self {
        self.u16(bytes.len() as u16);
        self.0.extend_from_slice(bytes);
        self
    }

    fn finish(mut self) -> Vec<u8> {
        let size = (self.0.len() as u32).to_be_bytes();
        self.0[2..6].copy_from_slice(&size);
        self.0
    }
}

/// TPM2_StartAuthSession: an HMAC session, or with `policy` a policy session, salted with the ECC
/// key at `salt_key` (the salt sent as the ephemeral point), unbound, AES-128-CFB parameter
/// encryption, SHA-256.
pub fn start_auth_session(
    salt_key: u32,
    nonce_caller: &[u8],
    ephemeral_x: &[u8],
    ephemeral_y: &[u8],
    policy: bool,
) -> Vec<u8> {
    let mut point = Command(Vec::with_capacity(4 + ephemeral_x.len() + ephemeral_y.len()));
    point.sized(ephemeral_x).sized(ephemeral_y);
    let mut c = Command::new(ST_NO_SESSIONS, CC_START_AUTH_SESSION);
    c.u32(salt_key).u32(RH_NULL).sized(nonce_caller).sized(&point.0).u8(if policy { SE_POLICY } else { SE_HMAC });
    c.u16(ALG_AES).u16(128).u16(ALG_CFB).u16(ALG_SHA256);
    c.finish()
}

/// The parameters of TPM2_HMAC: the message, and TPM_ALG_NULL (the key's own scheme).
pub fn hmac_parameters(message: &[u8]) -> Vec<u8> {
    let mut p = Command(Vec::with_capacity(message.len() + 4));
    p.sized(message).u16(ALG_NULL);
    p.0
}

/// Command `code` on the one handle that needs authorisation, with one session: its handle, new
/// caller nonce, attributes and HMAC.
pub fn authorised(
    code: u32,
    handle: u32,
    session: u32,
    nonce_caller: &[u8],
    attributes: u8,
    auth_hmac: &[u8],
    parameters: &[u8],
) -> Vec<u8> {
    let mut c = Command::new(ST_SESSIONS, code);
    c.u32(handle);
    c.u32((4 + 2 + nonce_caller.len() + 1 + 2 + auth_hmac.len()) as u32);
    c.u32(session).sized(nonce_caller).u8(attributes).sized(auth_hmac);
    c.0.extend_from_slice(parameters);
    c.finish()
}

/// Command `code` on `handle` authorised with the empty password (an object or hierarchy whose
/// authValue is empty and that is exempt from dictionary-attack counting: nothing secret is sent).
pub fn with_empty_password(code: u32, handle: u32, parameters: &[u8]) -> Vec<u8> {
    authorised(code, handle, RS_PW, &[], 0, &[], parameters)
}

/// TPM2B_SENSITIVE_CREATE with an empty authValue and `data` (a secret to import, or nothing):
/// the bytes inside the TPM2B, which a decrypt session encrypts.
pub fn sensitive_create(data: &[u8]) -> zeroize::Zeroizing<Vec<u8>> {
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(4 + data.len()));
    bytes.extend_from_slice(&0u16.to_be_bytes());
    bytes.extend_from_slice(&(data.len() as u16).to_be_bytes());
    bytes.extend_from_slice(data);
    bytes
}

/// The parameters of TPM2_CreatePrimary and TPM2_Create: `sensitive` (inside its TPM2B, encrypted
/// or not), the template, no outside info, no creation PCRs.
pub fn create_parameters(sensitive: &[u8], template: &[u8]) -> zeroize::Zeroizing<Vec<u8>> {
    let mut p = Command(Vec::with_capacity(sensitive.len() + template.len() + 12));
    p.sized(sensitive).sized(template).sized(&[]).u32(0);
    zeroize::Zeroizing::new(p.0)
}

/// The parameters of TPM2_Load: the wrapped private part and the public area (each without its
/// TPM2B size).
pub fn load_parameters(private: &[u8], public: &[u8]) -> Vec<u8> {
    let mut p = Command(Vec::with_capacity(private.len() + public.len() + 4));
    p.sized(private).sized(public);
    p.0
}

/// TPM2_FlushContext of a session we keep.
pub fn flush_context(handle: u32) -> Vec<u8> {
    let mut c = Command::new(ST_NO_SESSIONS, CC_FLUSH_CONTEXT);
    c.u32(handle);
    c.finish()
}

/// TPM2_ReadPublic of the object at `handle`.
pub fn read_public(handle: u32) -> Vec<u8> {
    let mut c = Command::new(ST_NO_SESSIONS, CC_READ_PUBLIC);
    c.u32(handle);
    c.finish()
}

/// TPM2_GetCapability of up to `count` entries of `capability`, from `property` on.
pub fn get_capability(capability: u32, property: u32, count: u32) -> Vec<u8> {
    let mut c = Command::new(ST_NO_SESSIONS, CC_GET_CAPABILITY);
    c.u32(capability).u32(property).u32(count);
    c.finish()
}

/// A response that does not parse.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// Reads a response front to back; every read checks what is left.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Malformed> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or(Malformed(what))?;
        let part = &self.bytes[self.at..end];
        self.at = end;
        Ok(part)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, Malformed> {
        Ok(self.take(1, what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, Malformed> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, Malformed> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A TPM2B's bytes.
    pub fn sized(&mut self, what: &'static str) -> Result<&'a [u8], Malformed> {
        let len = self.u16(what)? as usize;
        self.take(len, what)
    }

    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Malformed> {
        self.take(n, what)
    }

    pub fn done(&self) -> Result<(), Malformed> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(Malformed("bytes after the end of the response"))
        }
    }
}

/// A response's header: its tag and response code, with the size field checked against the
/// bytes received.
pub fn header(response: &[u8]) -> Result<(u16, u32, Reader<'_>), Malformed> {
    let mut r = Reader::new(response);
    let tag = r.u16("the header")?;
    let size = r.u32("the header")? as usize;
    let code = r.u32("the header")?;
    if size != response.len() {
        return Err(Malformed("a size field that does not match the response"));
    }
    if tag != ST_NO_SESSIONS && tag != ST_SESSIONS {
        return Err(Malformed("an unknown tag"));
    }
    Ok((tag, code, r))
}

/// What StartAuthSession answers: the session's handle (of a policy session with `policy`, else of
/// an HMAC session) and the TPM's first nonce.
pub fn session_started(response: &[u8], policy: bool) -> Result<Result<(u32, Vec<u8>), u32>, Malformed> {
    let (_, code, mut r) = header(response)?;
    if code != 0 {
        return Ok(Err(code));
    }
    let handle = r.u32("the session handle")?;
    let nonce = r.sized("the TPM's nonce")?.to_vec();
    r.done()?;
    if handle >> 24 != session_handle_type(policy) || nonce.len() < 16 {
        return Err(Malformed("not a session of the kind asked for"));
    }
    Ok(Ok((handle, nonce)))
}

/// The session handle in a successful StartAuthSession answer that does not parse otherwise.
pub fn session_handle_in(response: &[u8]) -> Option<u32> {
    let code = u32::from_be_bytes(response.get(6..10)?.try_into().ok()?);
    let handle = u32::from_be_bytes(response.get(10..14)?.try_into().ok()?);
    (code == 0 && matches!(handle >> 24, 0x02 | 0x03)).then_some(handle)
}

/// The handle type (the handle's top byte, Part 2, 7.2) of a policy or an HMAC session.
fn session_handle_type(policy: bool) -> u32 {
    if policy {
        0x03
    } else {
        0x02
    }
}

/// What TPM2_ReadPublic answers: the object's public area (TPMT_PUBLIC) and its name.
pub struct PublicAnswer<'a> {
    pub public: &'a [u8],
    pub name: &'a [u8],
}

pub fn public_answer(response: &[u8]) -> Result<Result<PublicAnswer<'_>, u32>, Malformed> {
    let (_, code, mut r) = header(response)?;
    if code != 0 {
        return Ok(Err(code));
    }
    let public = r.sized("the public area")?;
    let name = r.sized("the name")?;
    r.sized("the qualified name")?;
    r.done()?;
    Ok(Ok(PublicAnswer { public, name }))
}

/// The handles a TPM_CAP_HANDLES answer lists, and whether there are more. The count must be
/// exactly what follows, and moreData a TPMI_YES_NO: a cut or padded list is malformed.
pub fn handles_answer(response: &[u8]) -> Result<Result<(bool, Vec<u32>), u32>, Malformed> {
    let (tag, code, mut r) = header(response)?;
    if code != 0 {
        return Ok(Err(code));
    }
    if tag != ST_NO_SESSIONS {
        return Err(Malformed("a session in the answer"));
    }
    let more = match r.u8("moreData")? {
        0 => false,
        1 => true,
        _ => return Err(Malformed("moreData is not yes or no")),
    };
    if r.u32("the capability")? != CAP_HANDLES {
        return Err(Malformed("another capability than asked for"));
    }
    let count = r.u32("the count")? as usize;
    let entries = r.bytes(count.checked_mul(4).ok_or(Malformed("the count"))?, "the list")?;
    r.done()?;
    Ok(Ok((more, entries.chunks_exact(4).map(|h| u32::from_be_bytes([h[0], h[1], h[2], h[3]])).collect())))
}

/// What TPM2_HMAC answers with one session: its parameters are one TPM2B_DIGEST (the encrypted
/// digest) and nothing else.
pub fn hmac_answer(response: &[u8]) -> Result<Result<SessionAnswer<'_>, u32>, Malformed> {
    let answer = match session_answer(response, 0)? {
        Ok(answer) => answer,
        Err(code) => return Ok(Err(code)),
    };
    let mut p = Reader::new(answer.parameters);
    p.sized("the digest")?;
    p.done()?;
    Ok(Ok(answer))
}

/// An answer to a command with one session: its output handles (`handles` of them), the
/// parameter bytes and the session's nonce, attributes and HMAC (all empty for a password).
pub struct SessionAnswer<'a> {
    pub handles: Vec<u32>,
    pub parameters: &'a [u8],
    pub nonce_tpm: &'a [u8],
    pub attributes: u8,
    pub hmac: &'a [u8],
}

pub fn session_answer(response: &[u8], handles: usize) -> Result<Result<SessionAnswer<'_>, u32>, Malformed> {
    let (tag, code, mut r) = header(response)?;
    if code != 0 {
        return Ok(Err(code));
    }
    if tag != ST_SESSIONS {
        return Err(Malformed("no session in the answer"));
    }
    let handles = (0..handles).map(|_| r.u32("an output handle")).collect::<Result<Vec<u32>, Malformed>>()?;
    let size = r.u32("the parameter size")? as usize;
    let parameters = r.bytes(size, "the parameters")?;
    let nonce_tpm = r.sized("the TPM's nonce")?;
    let attributes = r.u8("the session attributes")?;
    let hmac = r.sized("the response HMAC")?;
    r.done()?;
    Ok(Ok(SessionAnswer { handles, parameters, nonce_tpm, attributes, hmac }))
}

/// The parameters of TPM2_CreatePrimary's answer that are used: the public area (TPMT_PUBLIC) and
/// the name the TPM gives it (the rest, creation data and ticket, is read past).
pub fn primary_created(parameters: &[u8]) -> Result<(&[u8], &[u8]), Malformed> {
    let mut r = Reader::new(parameters);
    let public = r.sized("the public area")?;
    read_creation(&mut r)?;
    let name = r.sized("the name")?;
    r.done()?;
    Ok((public, name))
}

/// The parameters of TPM2_Create's answer: the wrapped private part and the public area.
pub fn key_created(parameters: &[u8]) -> Result<(&[u8], &[u8]), Malformed> {
    let mut r = Reader::new(parameters);
    let private = r.sized("the private part")?;
    let public = r.sized("the public area")?;
    read_creation(&mut r)?;
    r.done()?;
    Ok((private, public))
}

/// TPM2B_CREATION_DATA, TPM2B_DIGEST (creation hash), TPMT_TK_CREATION.
fn read_creation(r: &mut Reader<'_>) -> Result<(), Malformed> {
    r.sized("the creation data")?;
    r.sized("the creation hash")?;
    r.u16("the ticket's tag")?;
    r.u32("the ticket's hierarchy")?;
    r.sized("the ticket's digest")?;
    Ok(())
}

/// The name in TPM2_Load's answer parameters.
pub fn loaded_name(parameters: &[u8]) -> Result<&[u8], Malformed> {
    let mut r = Reader::new(parameters);
    let name = r.sized("the name")?;
    r.done()?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_answer_parses_or_is_refused(bytes in proptest::collection::vec(any::<u8>(), 0..200), tag in 0..2u8) {
            // A plausible header half the time, so the parsers get past it.
            let mut bytes = bytes;
            if tag == 1 && bytes.len() >= 10 {
                let size = (bytes.len() as u32).to_be_bytes();
                bytes[..2].copy_from_slice(&[0x80, 0x02]);
                bytes[2..6].copy_from_slice(&size);
                bytes[6..10].copy_from_slice(&[0; 4]);
            }
            let _ = session_started(&bytes, false);
            let _ = session_started(&bytes, true);
            if let Ok(Ok(answer)) = hmac_answer(&bytes) {
                prop_assert!(answer.parameters.len() >= 2);
            }
            let _ = session_handle_in(&bytes);
            for handles in 0..2 {
                if let Ok(Ok(answer)) = session_answer(&bytes, handles) {
                    prop_assert!(answer.parameters.len() + answer.hmac.len() + 4 * handles + 17 <= bytes.len());
                    let _ = (primary_created(answer.parameters), key_created(answer.parameters));
                    let _ = loaded_name(answer.parameters);
                }
            }
            if let Ok(Ok((_, handles))) = handles_answer(&bytes) {
                prop_assert!(handles.len() * 4 + 19 == bytes.len());
            }
            if let Ok(Ok(answer)) = public_answer(&bytes) {
                prop_assert!(answer.public.len() + answer.name.len() + 16 <= bytes.len());
            }
        }
    }

    #[test]
    fn commands_carry_their_size_and_code() {
        let c = start_auth_session(0x8100_0001, &[7; 32], &[1; 32], &[2; 32], false);
        assert_eq!(&c[..2], &[0x80, 0x01]);
        let p = start_auth_session(0x8100_0001, &[7; 32], &[1; 32], &[2; 32], true);
        // The session type sits before the symmetric definition (4 x u16) and differs alone.
        assert_eq!((c[c.len() - 9], p[p.len() - 9]), (0x00, 0x01));
        assert_eq!((&c[..c.len() - 9], &c[c.len() - 8..]), (&p[..p.len() - 9], &p[p.len() - 8..]));
        assert_eq!(u32::from_be_bytes([c[2], c[3], c[4], c[5]]) as usize, c.len());
        assert_eq!(u32::from_be_bytes([c[6], c[7], c[8], c[9]]), CC_START_AUTH_SESSION);
        let h = authorised(CC_HMAC, 0x8100_0100, 0x0200_0000, &[3; 32], ENCRYPT, &[4; 32], &hmac_parameters(b"abc"));
        assert_eq!(u32::from_be_bytes([h[2], h[3], h[4], h[5]]) as usize, h.len());
        assert_eq!(&h[h.len() - 7..], &[0, 3, b'a', b'b', b'c', 0x00, 0x10]);
    }

    #[test]
    fn short_and_padded_answers_are_malformed() {
        let mut ok = vec![0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 16];
        ok.extend([9u8; 16]);
        let size = (ok.len() as u32).to_be_bytes();
        ok[2..6].copy_from_slice(&size);
        assert_eq!(session_started(&ok, false).unwrap().unwrap(), (0x0200_0000, vec![9u8; 16]));
        assert!(session_started(&ok, true).is_err(), "an HMAC session where a policy session was asked for");
        let mut policy = ok.clone();
        policy[10] = 0x03;
        assert_eq!(session_started(&policy, true).unwrap().unwrap(), (0x0300_0000, vec![9u8; 16]));
        assert!(session_started(&policy, false).is_err(), "a policy session where an HMAC session was asked for");
        for cut in 0..ok.len() {
            assert!(session_started(&ok[..cut], false).is_err(), "cut at {cut}");
        }
        let mut long = ok.clone();
        long.push(0);
        assert!(session_started(&long, false).is_err());
        let error = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x09, 0x8E];
        assert_eq!(session_started(&error, false).unwrap(), Err(0x98E));
    }

    #[test]
    fn a_handle_list_must_be_as_long_as_its_count() {
        let mut ok = vec![0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2];
        ok.extend([0x81, 0, 0, 1, 0x81, 0, 1, 0]);
        let size = (ok.len() as u32).to_be_bytes();
        ok[2..6].copy_from_slice(&size);
        assert_eq!(handles_answer(&ok).unwrap().unwrap(), (false, vec![0x8100_0001, 0x8100_0100]));
        for cut in 0..ok.len() {
            // Cut as an interposer would, with the size field made to match.
            let mut cut_answer = ok[..cut].to_vec();
            if cut >= 6 {
                let size = (cut as u32).to_be_bytes();
                cut_answer[2..6].copy_from_slice(&size);
            }
            assert!(handles_answer(&cut_answer).is_err(), "cut at {cut}");
        }
        let mut more = ok.clone();
        more[10] = 2;
        assert!(handles_answer(&more).is_err(), "moreData must be yes or no");
        let mut other = ok.clone();
        other[14] = 6;
        assert!(handles_answer(&other).is_err(), "another capability");
        let c = get_capability(CAP_HANDLES, 0x8100_0000, 64);
        assert_eq!(u32::from_be_bytes([c[2], c[3], c[4], c[5]]) as usize, c.len());
        assert_eq!(u32::from_be_bytes([c[6], c[7], c[8], c[9]]), CC_GET_CAPABILITY);
    }
}
