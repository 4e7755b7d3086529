//! The part of the age file format (age-encryption.org/v1) that the file
//! store needs: one passphrase (scrypt) recipient, and the STREAM payload.
//!
//! We write files that `age -d` and `rage -d` decrypt, and read files that
//! `age -p` writes, so a person can always get their secrets out without us.
//! The `age` crate does this and more, but brings ~117 crates (localization,
//! async I/O, embedded assets); the format itself is small, so it is written
//! here on RustCrypto's scrypt, ChaCha20-Poly1305, HKDF and HMAC.
//!
//! A file is:
//!
//! ```text
//! age-encryption.org/v1
//! -> scrypt <salt, base64> <log2 N>
//! <the wrapped file key, base64, in lines of 64 columns, the last one shorter>
//! --- <HMAC of the header up to and including `---`, base64>
//! <16-byte nonce><payload: 64 KiB chunks, each sealed with ChaCha20-Poly1305>
//! ```
//!
//! base64 here is the standard alphabet without padding, and decoding is
//! strict (canonical encodings only), as the spec asks.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as BASE64;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

const VERSION_LINE: &[u8] = b"age-encryption.org/v1\n";
const SCRYPT_LABEL: &[u8] = b"age-encryption.org/v1/scrypt";
const FOOTER: &[u8] = b"---";
/// Columns of a stanza body line.
const COLUMNS: usize = 64;
const FILE_KEY: usize = 16;
const SALT: usize = 16;
const PAYLOAD_NONCE: usize = 16;
const TAG: usize = 16;
/// Plaintext bytes per STREAM chunk.
const CHUNK: usize = 64 * 1024;

/// The highest scrypt work factor (log2 N) we try, as `age` itself does.
/// A file could name any; each step doubles time and memory, and 2^22 already
/// takes 4 GiB and several seconds. A hostile or damaged file must not make
/// us spend minutes, or all memory, before saying no.
pub(crate) const MAX_LOG_N: u8 = 22;

/// Why a file did not decrypt. None of these carries any of its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Error {
    /// Not an age file, or not one we can read; says what is wrong.
    Malformed(&'static str),
    /// An age file, but for age keys, not a passphrase.
    NotPassphrase,
    /// Its scrypt work factor is above [`MAX_LOG_N`].
    WorkFactor(u32),
    /// The passphrase does not unwrap the file key.
    WrongPassphrase,
    /// The passphrase is right, but the header or payload was changed or cut.
    Tampered(&'static str),
    /// The operating system gave no random bytes.
    Random(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed(what) => write!(f, "it is not a valid age file: {what}"),
            Self::NotPassphrase => f.write_str(
                "it is an age file for age keys (recipients), not for a passphrase; \
                 with-secrets only reads passphrase-encrypted files (age -p)",
            ),
            Self::WorkFactor(log_n) => write!(
                f,
                "its scrypt work factor is 2^{log_n}, above the 2^{MAX_LOG_N} with-secrets \
                 will try (it could take minutes and gigabytes); if you made it, \
                 re-encrypt it with a lower one"
            ),
            Self::WrongPassphrase => f.write_str("the passphrase does not open it"),
            Self::Tampered(what) => write!(f, "{what} was changed or damaged"),
            Self::Random(reason) => write!(f, "no random bytes from the system: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

/// A file key: what the header wraps and the payload is sealed with.
pub(crate) type FileKey = Zeroizing<[u8; FILE_KEY]>;

/// The length of a [`FileKey`].
#[cfg_attr(
    not(target_os = "linux"),
    allow(dead_code, reason = "only unlock uses it")
)]
pub(crate) const FILE_KEY_LEN: usize = FILE_KEY;

/// Encrypts `plaintext` to `passphrase`, with scrypt work factor 2^`log_n`:
/// a new file, with a new file key and a new salt.
pub(crate) fn encrypt(passphrase: &[u8], log_n: u8, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    let mut file_key = Zeroizing::new([0u8; FILE_KEY]);
    random(file_key.as_mut())?;
    let mut salt = [0u8; SALT];
    random(&mut salt)?;
    let wrap_key = scrypt_key(passphrase, &salt, log_n)?;
    let mut body = file_key.to_vec();
    let tag = seal(&wrap_key, &Nonce::default(), &mut body);
    body.extend_from_slice(&tag);
    let stanza = Stanza {
        args: vec!["scrypt".into(), BASE64.encode(salt), log_n.to_string()],
        body,
    };
    let mut header = Vec::new();
    write_header(&mut header, std::slice::from_ref(&stanza));
    let mac = header_mac(&file_key, &header);
    header.push(b' ');
    header.extend_from_slice(BASE64.encode(mac).as_bytes());
    header.push(b'\n');
    seal_payload(&header, &file_key, plaintext)
}

/// `header` (whole, with its MAC line), then `plaintext` sealed as a payload
/// under `file_key` with a new random nonce.
fn seal_payload(header: &[u8], file_key: &FileKey, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    // An empty plaintext is one empty (last) chunk.
    let chunks: Vec<&[u8]> = if plaintext.is_empty() {
        vec![&[]]
    } else {
        plaintext.chunks(CHUNK).collect()
    };
    // Reserved in full, so that no reallocation leaves a copy of a plaintext
    // chunk (sealed in place, below) in freed memory.
    let mut out =
        Vec::with_capacity(header.len() + PAYLOAD_NONCE + plaintext.len() + chunks.len() * TAG);
    let capacity = out.capacity();
    out.extend_from_slice(header);
    let mut nonce = [0u8; PAYLOAD_NONCE];
    random(&mut nonce)?;
    out.extend_from_slice(&nonce);
    let payload_key = payload_key(file_key, &nonce);
    for (index, piece) in chunks.iter().enumerate() {
        let start = out.len();
        out.extend_from_slice(piece);
        let nonce = chunk_nonce(index as u64, index + 1 == chunks.len());
        let tag = seal(&payload_key, &nonce, &mut out[start..]);
        out.extend_from_slice(&tag);
    }
    debug_assert_eq!(out.capacity(), capacity, "the output grew");
    Ok(out)
}

/// ChaCha20-Poly1305 in place; returns the tag.
fn seal(key: &[u8; 32], nonce: &Nonce, buffer: &mut [u8]) -> Tag {
    ChaCha20Poly1305::new(Key::from_slice(key))
        .encrypt_in_place_detached(nonce, b"", buffer)
        .expect("a chunk is far below ChaCha20-Poly1305's length limit")
}

/// Opens ChaCha20-Poly1305 in place; on failure `buffer` is left as it was.
fn open(key: &[u8; 32], nonce: &Nonce, buffer: &mut [u8], tag: &[u8]) -> Result<(), ()> {
    ChaCha20Poly1305::new(Key::from_slice(key))
        .decrypt_in_place_detached(nonce, b"", buffer, Tag::from_slice(tag))
        .map_err(|_| ())
}

/// Decrypts `file` with `passphrase`.
#[cfg(test)]
pub(crate) fn decrypt(passphrase: &[u8], file: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
    Encrypted::parse(file)?.decrypt(passphrase)
}

/// An age file whose header has been read and checked, so that whatever
/// is wrong with it short of the passphrase is told before anyone is asked
/// for one, or spends time in scrypt.
pub(crate) struct Encrypted<'a> {
    file: &'a [u8],
    header: Header,
    scrypt: Scrypt,
}

impl<'a> Encrypted<'a> {
    pub(crate) fn parse(file: &'a [u8]) -> Result<Self, Error> {
        let header = Header::parse(file)?;
        let scrypt = Scrypt::from_stanzas(&header.stanzas)?;
        Ok(Self {
            file,
            header,
            scrypt,
        })
    }

    #[cfg(test)]
    pub(crate) fn decrypt(&self, passphrase: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        let file_key = self.file_key(passphrase)?;
        self.decrypt_with(&file_key)
    }

    /// The file key, unwrapped with `passphrase` (one scrypt), and checked
    /// against the header's MAC.
    pub(crate) fn file_key(&self, passphrase: &[u8]) -> Result<FileKey, Error> {
        let file_key = self.scrypt.file_key(passphrase)?;
        if !self.opens_with(&file_key) {
            return Err(Error::Tampered("its header"));
        }
        Ok(file_key)
    }

    /// Whether `file_key` is this file's: the header's MAC checks out.
    pub(crate) fn opens_with(&self, file_key: &FileKey) -> bool {
        let mut mac = header_hmac(file_key);
        mac.update(&self.file[..self.header.mac_input]);
        mac.verify_slice(&self.header.mac).is_ok()
    }

    /// The payload, opened with a file key that [`Self::opens_with`] this file.
    pub(crate) fn decrypt_with(&self, file_key: &FileKey) -> Result<Zeroizing<Vec<u8>>, Error> {
        decrypt_payload(file_key, &self.file[self.header.payload..])
    }

    /// A new version of this file holding `plaintext`, for a file key that
    /// [`Self::opens_with`] it: the same header, byte for byte (the same
    /// salt, wrapped file key and MAC), and a new payload with a new nonce.
    ///
    /// This is what lets an unlocked file store be written without the
    /// passphrase, and it stays within age's security model although the
    /// spec asks for a new file key and a new salt for each file:
    ///
    /// - No key ever seals two messages under one nonce. The header wraps
    ///   the same file key under the same scrypt key, so its ChaCha20-Poly1305
    ///   body (fixed zero nonce) is the identical ciphertext of the identical
    ///   plaintext: nothing new is encrypted under that key. Each payload has
    ///   a new random 16-byte nonce, and its key is HKDF(file key, nonce), so
    ///   two versions share a payload key only if their nonces collide (2^-128
    ///   for a pair; the STREAM chunk nonces restart at 0 under each new key).
    /// - The header MAC is the same MAC of the same bytes: it reveals nothing.
    /// - What reuse costs is confinement: whoever learns the file key reads
    ///   every version of the file that shares this header, not just one.
    ///   That is the point of the key the file store keeps while unlocked,
    ///   and why a run that has the passphrase writes a new file key and a
    ///   new salt instead (see `encrypt`); the versions are linkable as the
    ///   same file, which their path already says.
    ///
    /// The result is a standard age file: `age -d` opens it with the
    /// passphrase.
    pub(crate) fn reencrypt(&self, file_key: &FileKey, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        debug_assert!(self.opens_with(file_key), "not this file's key");
        seal_payload(&self.file[..self.header.payload], file_key, plaintext)
    }

    /// The salt of its scrypt stanza, which is new whenever a file key is.
    #[cfg_attr(
        not(target_os = "linux"),
        allow(dead_code, reason = "only unlock uses it")
    )]
    pub(crate) fn salt(&self) -> [u8; SALT] {
        self.scrypt.salt
    }
}

/// One recipient stanza: `-> ARGS...` and a binary body.
#[derive(Debug, PartialEq, Eq)]
struct Stanza {
    args: Vec<String>,
    body: Vec<u8>,
}

/// A parsed header, with where its parts are in the file.
#[derive(Debug)]
struct Header {
    stanzas: Vec<Stanza>,
    /// The length of the header up to and including `---`: what the MAC covers.
    mac_input: usize,
    mac: Vec<u8>,
    /// Where the payload starts.
    payload: usize,
}

/// Writes the version line and `stanzas`, ending with `---` (no MAC yet).
fn write_header(out: &mut Vec<u8>, stanzas: &[Stanza]) {
    out.extend_from_slice(VERSION_LINE);
    for stanza in stanzas {
        out.extend_from_slice(b"->");
        for arg in &stanza.args {
            out.push(b' ');
            out.extend_from_slice(arg.as_bytes());
        }
        out.push(b'\n');
        let body = BASE64.encode(&stanza.body);
        for line in body.as_bytes().chunks(COLUMNS) {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        // The last line is always shorter than a full one, so a body whose
        // encoding fills whole lines (or is empty) ends with an empty line.
        if body.len() % COLUMNS == 0 {
            out.push(b'\n');
        }
    }
    out.extend_from_slice(FOOTER);
}

impl Header {
    fn parse(file: &[u8]) -> Result<Self, Error> {
        if !file.starts_with(VERSION_LINE) {
            return Err(Error::Malformed(
                "it does not start with age-encryption.org/v1",
            ));
        }
        let mut at = VERSION_LINE.len();
        let mut stanzas = Vec::new();
        loop {
            let line = next_line(file, &mut at)?;
            if line.starts_with(FOOTER) {
                let mac_input = at - line.len() - 1 + FOOTER.len();
                let mac = line
                    .strip_prefix(b"--- ")
                    .and_then(|mac| decode(mac).ok())
                    .filter(|mac| mac.len() == 32)
                    .ok_or(Error::Malformed("its header MAC line is not valid"))?;
                return Ok(Self {
                    stanzas,
                    mac_input,
                    mac,
                    payload: at,
                });
            }
            let args = line.strip_prefix(b"-> ").ok_or(Error::Malformed(
                "a header line is neither a stanza nor ---",
            ))?;
            let args = args
                .split(|&b| b == b' ')
                .map(|arg| {
                    let valid = !arg.is_empty() && arg.iter().all(|b| (33..=126).contains(b));
                    valid
                        .then(|| String::from_utf8_lossy(arg).into_owned())
                        .ok_or(Error::Malformed("a stanza argument is not valid"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut text = Vec::new();
            loop {
                let line = next_line(file, &mut at)?;
                if line.len() > COLUMNS {
                    return Err(Error::Malformed("a stanza body line is too long"));
                }
                text.extend_from_slice(line);
                if line.len() < COLUMNS {
                    break;
                }
            }
            let body =
                decode(&text).map_err(|_| Error::Malformed("a stanza body is not base64"))?;
            stanzas.push(Stanza { args, body });
        }
    }
}

/// The line at `*at`, without its `\n`; moves `at` past it.
fn next_line<'a>(file: &'a [u8], at: &mut usize) -> Result<&'a [u8], Error> {
    let rest = &file[*at..];
    let end = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(Error::Malformed("its header ends early"))?;
    *at += end + 1;
    Ok(&rest[..end])
}

fn decode(text: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    BASE64.decode(text)
}

/// The one scrypt stanza, checked.
struct Scrypt {
    salt: [u8; SALT],
    log_n: u8,
    /// The file key, sealed, and its tag.
    wrapped: [u8; FILE_KEY + TAG],
}

impl Scrypt {
    fn from_stanzas(stanzas: &[Stanza]) -> Result<Self, Error> {
        let is_scrypt = |stanza: &Stanza| stanza.args.first().is_some_and(|tag| tag == "scrypt");
        // Anyone who knows a passphrase could add or swap other recipients
        // unseen, so the spec allows none beside it.
        let stanza = match stanzas {
            [stanza] if is_scrypt(stanza) => stanza,
            _ if stanzas.iter().any(is_scrypt) => {
                return Err(Error::Malformed("an scrypt stanza is not the only one"));
            }
            _ => return Err(Error::NotPassphrase),
        };
        let [_, salt, log_n] = stanza.args.as_slice() else {
            return Err(Error::Malformed(
                "its scrypt stanza does not have two arguments",
            ));
        };
        let salt = decode(salt.as_bytes())
            .ok()
            .and_then(|salt| salt.try_into().ok())
            .ok_or(Error::Malformed(
                "its scrypt salt is not 16 bytes of base64",
            ))?;
        // Decimal, with no sign and no leading zero, as age writes it.
        let canonical = !log_n.starts_with('0') && log_n.bytes().all(|b| b.is_ascii_digit());
        let log_n: u32 = log_n
            .parse()
            .ok()
            .filter(|&n| canonical && n > 0)
            .ok_or(Error::Malformed("its scrypt work factor is not a number"))?;
        let log_n = u8::try_from(log_n)
            .ok()
            .filter(|&n| n <= MAX_LOG_N)
            .ok_or(Error::WorkFactor(log_n))?;
        let wrapped = stanza
            .body
            .as_slice()
            .try_into()
            .map_err(|_| Error::Malformed("its wrapped file key is not 32 bytes"))?;
        Ok(Self {
            salt,
            log_n,
            wrapped,
        })
    }

    /// The file key, unwrapped with `passphrase`.
    fn file_key(&self, passphrase: &[u8]) -> Result<FileKey, Error> {
        let wrap_key = scrypt_key(passphrase, &self.salt, self.log_n)?;
        let mut file_key = Zeroizing::new([0u8; FILE_KEY]);
        file_key.copy_from_slice(&self.wrapped[..FILE_KEY]);
        let tag = &self.wrapped[FILE_KEY..];
        // A wrong passphrase and a changed body are one and the same here.
        open(&wrap_key, &Nonce::default(), file_key.as_mut(), tag)
            .map_err(|()| Error::WrongPassphrase)?;
        Ok(file_key)
    }
}

/// scrypt(passphrase, "age-encryption.org/v1/scrypt" || salt, N = 2^log_n,
/// r = 8, p = 1): the key that wraps the file key.
fn scrypt_key(
    passphrase: &[u8],
    salt: &[u8; SALT],
    log_n: u8,
) -> Result<Zeroizing<[u8; 32]>, Error> {
    let params = scrypt::Params::new(log_n, 8, 1, 32)
        .map_err(|_| Error::Malformed("its scrypt work factor is not valid"))?;
    let mut labelled = SCRYPT_LABEL.to_vec();
    labelled.extend_from_slice(salt);
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(passphrase, &labelled, &params, key.as_mut())
        .expect("32 bytes is a valid scrypt output length");
    Ok(key)
}

/// HMAC-SHA256 keyed with HKDF-SHA256(file key, no salt, "header").
fn header_hmac(file_key: &FileKey) -> Hmac<Sha256> {
    let key = hkdf(file_key.as_ref(), &[], b"header");
    <Hmac<Sha256> as Mac>::new_from_slice(key.as_ref()).expect("HMAC takes any key length")
}

fn header_mac(file_key: &FileKey, header: &[u8]) -> [u8; 32] {
    let mut mac = header_hmac(file_key);
    mac.update(header);
    mac.finalize().into_bytes().into()
}

fn payload_key(file_key: &FileKey, nonce: &[u8; PAYLOAD_NONCE]) -> Zeroizing<[u8; 32]> {
    hkdf(file_key.as_ref(), nonce, b"payload")
}

fn hkdf(ikm: &[u8], salt: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut okm = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, okm.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 length");
    okm
}

/// STREAM's nonce: an 11-byte big-endian chunk counter, then 1 for the last
/// chunk and 0 for the others.
fn chunk_nonce(counter: u64, last: bool) -> Nonce {
    let mut nonce = Nonce::default();
    nonce[3..11].copy_from_slice(&counter.to_be_bytes());
    nonce[11] = u8::from(last);
    nonce
}

fn decrypt_payload(file_key: &FileKey, payload: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
    let truncated = Error::Tampered("its payload (cut short)");
    let nonce: &[u8; PAYLOAD_NONCE] = payload
        .get(..PAYLOAD_NONCE)
        .and_then(|nonce| nonce.try_into().ok())
        .ok_or_else(|| truncated.clone())?;
    let sealed = &payload[PAYLOAD_NONCE..];
    if sealed.is_empty() {
        return Err(truncated);
    }
    let key = payload_key(file_key, nonce);
    let chunks = sealed.len().div_ceil(CHUNK + TAG);
    let mut plaintext = Zeroizing::new(Vec::with_capacity(sealed.len()));
    for (index, piece) in sealed.chunks(CHUNK + TAG).enumerate() {
        let last = index + 1 == chunks;
        let Some(split) = piece.len().checked_sub(TAG) else {
            return Err(truncated);
        };
        // Only the first chunk may be empty: an empty last chunk after others
        // is a second way to write the same plaintext, which the spec forbids.
        if last && split == 0 && index > 0 {
            return Err(Error::Tampered("its payload (an empty last chunk)"));
        }
        let (text, tag) = piece.split_at(split);
        let start = plaintext.len();
        plaintext.extend_from_slice(text);
        let nonce = |last| chunk_nonce(index as u64, last);
        if open(&key, &nonce(last), &mut plaintext[start..], tag).is_err() {
            // A full chunk that opens as a middle one means the file was cut
            // right after it; anything else is a changed byte (or junk appended).
            let cut = last
                && text.len() == CHUNK
                && open(&key, &nonce(false), &mut plaintext[start..], tag).is_ok();
            return Err(if cut {
                truncated
            } else {
                Error::Tampered("its payload")
            });
        }
    }
    Ok(plaintext)
}

fn random(buffer: &mut [u8]) -> Result<(), Error> {
    getrandom::getrandom(buffer).map_err(|err| Error::Random(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small, so that the tests do not spend their time in scrypt.
    const TEST_LOG_N: u8 = 10;

    fn plaintext(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn header_text(file: &[u8]) -> String {
        let header = Header::parse(file).unwrap();
        String::from_utf8(file[..header.payload].to_vec()).unwrap()
    }

    #[test]
    fn a_file_decrypts_to_what_was_encrypted() {
        let file = encrypt(b"pass phrase", TEST_LOG_N, b"{\"x\": 1}").unwrap();
        assert_eq!(
            decrypt(b"pass phrase", &file).unwrap().as_slice(),
            b"{\"x\": 1}"
        );
    }

    #[test]
    fn a_reencrypted_file_keeps_its_header_and_gets_a_new_payload_nonce() {
        let first = encrypt(b"pass phrase", TEST_LOG_N, b"one").unwrap();
        let encrypted = Encrypted::parse(&first).unwrap();
        let file_key = encrypted.file_key(b"pass phrase").unwrap();
        let other = encrypt(b"pass phrase", TEST_LOG_N, b"one").unwrap();
        let other_key = Encrypted::parse(&other)
            .unwrap()
            .file_key(b"pass phrase")
            .unwrap();
        assert!(!encrypted.opens_with(&other_key), "another file's key");
        let second = encrypted.reencrypt(&file_key, b"two").unwrap();
        let third = encrypted.reencrypt(&file_key, b"two").unwrap();
        let payload = encrypted.header.payload;
        assert_eq!(first[..payload], second[..payload], "the same header");
        assert_ne!(
            second[payload..payload + PAYLOAD_NONCE],
            third[payload..payload + PAYLOAD_NONCE],
            "a new nonce each time"
        );
        assert_ne!(second[payload..], third[payload..]);
        for file in [&second, &third] {
            assert_eq!(decrypt(b"pass phrase", file).unwrap().as_slice(), b"two");
        }
    }

    #[test]
    fn the_header_is_the_version_line_one_scrypt_stanza_and_the_mac() {
        let file = encrypt(b"p", TEST_LOG_N, b"").unwrap();
        let text = header_text(&file);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(lines[0], "age-encryption.org/v1");
        let args: Vec<&str> = lines[1].split(' ').collect();
        assert_eq!(args[..2], ["->", "scrypt"]);
        assert_eq!(args[2].len(), 22, "16 bytes of unpadded base64");
        assert_eq!(args[3], TEST_LOG_N.to_string());
        assert_eq!(lines[2].len(), 43, "32 bytes of unpadded base64");
        assert!(lines[3].starts_with("--- ") && lines[3].len() == 4 + 43);
        let header = Header::parse(&file).unwrap();
        assert_eq!(&file[header.mac_input - 3..header.mac_input], b"---");
        assert_eq!(file.len(), header.payload + PAYLOAD_NONCE + TAG);
    }

    #[test]
    fn stanza_bodies_wrap_at_64_columns_with_a_shorter_last_line() {
        // 48 bytes are exactly 64 base64 columns; 0 bytes are none.
        for (len, lines) in [
            (0, vec![0]),
            (32, vec![43]),
            (48, vec![64, 0]),
            (100, vec![64, 64, 6]),
        ] {
            let stanza = Stanza {
                args: vec!["test".into(), "arg".into()],
                body: plaintext(len),
            };
            let mut out = Vec::new();
            write_header(&mut out, std::slice::from_ref(&stanza));
            let text = String::from_utf8(out.clone()).unwrap();
            let widths: Vec<usize> = text.lines().skip(2).map(str::len).collect();
            assert_eq!(widths[..widths.len() - 1], lines, "{len}: {text:?}");
            out.extend_from_slice(b" AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n");
            let header = Header::parse(&out).unwrap();
            assert_eq!(header.stanzas, [stanza], "{len}");
            assert_eq!(header.payload, out.len());
        }
    }

    #[test]
    fn a_body_line_of_64_columns_must_be_followed_by_another() {
        let mut out = Vec::new();
        let stanza = Stanza {
            args: vec!["test".into()],
            body: plaintext(48),
        };
        write_header(&mut out, std::slice::from_ref(&stanza));
        let text = String::from_utf8(out).unwrap();
        // Drop the empty line that ends a body of whole lines.
        let cut = text.replacen("\n\n---", "\n---", 1);
        let cut = format!("{cut} AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n");
        assert!(Header::parse(cut.as_bytes()).is_err());
    }

    #[test]
    fn stream_round_trips_at_chunk_boundaries() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK] {
            let data = plaintext(len);
            let file = encrypt(b"p", TEST_LOG_N, &data).unwrap();
            let header = Header::parse(&file).unwrap();
            let chunks = len.div_ceil(CHUNK).max(1);
            assert_eq!(
                file.len() - header.payload,
                PAYLOAD_NONCE + len + chunks * TAG,
                "{len}"
            );
            assert_eq!(decrypt(b"p", &file).unwrap().as_slice(), data, "{len}");
        }
    }

    #[test]
    fn a_changed_byte_anywhere_is_rejected() {
        let file = encrypt(b"p", TEST_LOG_N, &plaintext(CHUNK + 1)).unwrap();
        let header = Header::parse(&file).unwrap();
        // The version line, a salt byte, the MAC, the nonce, both chunks.
        for at in [3, 12 + VERSION_LINE.len(), header.mac_input + 5] {
            let mut changed = file.clone();
            changed[at] ^= 1;
            assert!(decrypt(b"p", &changed).is_err(), "byte {at}");
        }
        for at in [header.payload, header.payload + 20, file.len() - 1] {
            let mut changed = file.clone();
            changed[at] ^= 1;
            let err = decrypt(b"p", &changed).unwrap_err();
            assert_eq!(err, Error::Tampered("its payload"), "byte {at}");
        }
    }

    #[test]
    fn a_changed_stanza_body_reads_as_a_wrong_passphrase_and_a_changed_mac_as_tampering() {
        let file = encrypt(b"p", TEST_LOG_N, b"x").unwrap();
        let header = Header::parse(&file).unwrap();
        let text = header_text(&file);
        let body_at = text.find("\n--- ").unwrap() - 43;
        let mut changed = file.clone();
        changed[body_at] = if changed[body_at] == b'A' { b'B' } else { b'A' };
        assert_eq!(decrypt(b"p", &changed).unwrap_err(), Error::WrongPassphrase);
        let mut changed = file.clone();
        let mac_at = header.mac_input + 2;
        changed[mac_at] = if changed[mac_at] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            decrypt(b"p", &changed).unwrap_err(),
            Error::Tampered("its header")
        );
    }

    #[test]
    fn a_wrong_passphrase_is_told_apart() {
        let file = encrypt(b"right", TEST_LOG_N, b"x").unwrap();
        assert_eq!(
            decrypt(b"wrong", &file).unwrap_err(),
            Error::WrongPassphrase
        );
    }

    #[test]
    fn cut_or_extended_payloads_are_rejected() {
        let data = plaintext(2 * CHUNK);
        let file = encrypt(b"p", TEST_LOG_N, &data).unwrap();
        let header = Header::parse(&file).unwrap();
        // Cut after the first full chunk: it opens only as a middle chunk.
        let first = header.payload + PAYLOAD_NONCE + CHUNK + TAG;
        assert_eq!(
            decrypt(b"p", &file[..first]).unwrap_err(),
            Error::Tampered("its payload (cut short)")
        );
        for cut in [
            file.len() - 1,
            header.payload + PAYLOAD_NONCE,
            header.payload + 3,
        ] {
            assert!(decrypt(b"p", &file[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = file.clone();
        longer.push(0);
        assert!(decrypt(b"p", &longer).is_err());
        let mut longer = file.clone();
        longer.extend_from_slice(&[0; TAG]);
        assert!(decrypt(b"p", &longer).is_err());
    }

    #[test]
    fn an_empty_last_chunk_after_a_full_one_is_rejected() {
        // Seal by hand: a full middle chunk, then an empty last chunk.
        let file = encrypt(b"p", TEST_LOG_N, &plaintext(CHUNK)).unwrap();
        let header = Header::parse(&file).unwrap();
        let scrypt = Scrypt::from_stanzas(&header.stanzas).unwrap();
        let file_key = scrypt.file_key(b"p").unwrap();
        let nonce: [u8; PAYLOAD_NONCE] =
            file[header.payload..][..PAYLOAD_NONCE].try_into().unwrap();
        let key = payload_key(&file_key, &nonce);
        let mut out = file[..header.payload + PAYLOAD_NONCE].to_vec();
        let mut middle = plaintext(CHUNK);
        let tag = seal(&key, &chunk_nonce(0, false), &mut middle);
        out.extend_from_slice(&middle);
        out.extend_from_slice(&tag);
        out.extend_from_slice(&seal(&key, &chunk_nonce(1, true), &mut []));
        assert_eq!(
            decrypt(b"p", &out).unwrap_err(),
            Error::Tampered("its payload (an empty last chunk)")
        );
    }

    fn with_stanza_line(file: &[u8], line: &str) -> Vec<u8> {
        let text = header_text(file);
        let old = text.lines().nth(1).unwrap();
        let mut out = text.replacen(old, line, 1).into_bytes();
        out.extend_from_slice(&file[Header::parse(file).unwrap().payload..]);
        out
    }

    #[test]
    fn work_factors_above_the_cap_are_refused_before_any_work() {
        let file = encrypt(b"p", TEST_LOG_N, b"x").unwrap();
        let salt = header_text(&file)
            .lines()
            .nth(1)
            .unwrap()
            .split(' ')
            .nth(2)
            .unwrap()
            .to_owned();
        let high = with_stanza_line(&file, &format!("-> scrypt {salt} 23"));
        assert_eq!(decrypt(b"p", &high).unwrap_err(), Error::WorkFactor(23));
        let big = with_stanza_line(&file, &format!("-> scrypt {salt} 4294967295"));
        assert_eq!(
            decrypt(b"p", &big).unwrap_err(),
            Error::WorkFactor(u32::MAX)
        );
        let huge = with_stanza_line(&file, &format!("-> scrypt {salt} 4294967296"));
        assert!(matches!(
            decrypt(b"p", &huge).unwrap_err(),
            Error::Malformed(_)
        ));
        for bad in ["010", "+10", "0", "-1", "1e1"] {
            let odd = with_stanza_line(&file, &format!("-> scrypt {salt} {bad}"));
            assert!(
                matches!(decrypt(b"p", &odd).unwrap_err(), Error::Malformed(_)),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_scrypt_stanza_must_be_alone() {
        let file = encrypt(b"p", TEST_LOG_N, b"x").unwrap();
        let text = header_text(&file);
        let stanza: String = text
            .lines()
            .skip(1)
            .take(2)
            .map(|l| format!("{l}\n"))
            .collect();
        let doubled = text.replacen(&stanza, &format!("{stanza}-> X25519 abc\nAAAA\n"), 1);
        assert_eq!(
            decrypt(b"p", doubled.as_bytes()).unwrap_err(),
            Error::Malformed("an scrypt stanza is not the only one")
        );
        let keys_only = text.replacen(&stanza, "-> X25519 abc\nAAAA\n", 1);
        assert_eq!(
            decrypt(b"p", keys_only.as_bytes()).unwrap_err(),
            Error::NotPassphrase
        );
    }

    #[test]
    fn non_canonical_base64_is_rejected() {
        let file = encrypt(b"p", TEST_LOG_N, b"x").unwrap();
        let text = header_text(&file);
        let line = text.lines().nth(1).unwrap();
        assert!(decrypt(b"p", &with_stanza_line(&file, &format!("{line} "))).is_err());
        assert!(decrypt(b"p", &with_stanza_line(&file, &format!("-{line}"))).is_err());
        // 22 characters hold 16 bytes and 4 spare bits, which must be zero.
        let salt = line.split(' ').nth(2).unwrap();
        let last = salt.as_bytes()[21];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let index = alphabet.iter().position(|&c| c == last).unwrap();
        let odd = alphabet[index ^ 1] as char;
        let salt = format!("{}{odd}", &salt[..21]);
        let changed = with_stanza_line(&file, &format!("-> scrypt {salt} {TEST_LOG_N}"));
        assert_eq!(
            decrypt(b"p", &changed).unwrap_err(),
            Error::Malformed("its scrypt salt is not 16 bytes of base64")
        );
    }

    /// The cost of one passphrase check at each work factor. Run with
    /// `cargo test --lib scrypt_cost -- --ignored --nocapture` (the dev
    /// profile optimizes scrypt, so the figures are those of a release build).
    #[test]
    #[ignore = "a benchmark: prints figures"]
    fn scrypt_cost() {
        for log_n in 14..=18 {
            let mut times: Vec<f64> = (0..5)
                .map(|_| {
                    let start = std::time::Instant::now();
                    scrypt_key(b"correct horse battery staple", &[7; SALT], log_n).unwrap();
                    start.elapsed().as_secs_f64() * 1000.0
                })
                .collect();
            times.sort_by(f64::total_cmp);
            println!(
                "log2 N = {log_n}: {:.0} ms (median of 5), {} MiB",
                times[2],
                (128u64 * 8) << log_n >> 20
            );
        }
    }
}
