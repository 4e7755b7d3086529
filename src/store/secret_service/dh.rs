//! The Secret Service `dh-ietf1024-sha256-aes128-cbc-pkcs7` transport encryption.
//!
//! The spec: both sides exchange Diffie-Hellman public keys in the 1024-bit
//! MODP group of RFC 2409 ("Second Oakley Group"), derive a 16-byte AES key
//! with HKDF-SHA256 (no salt, no info) from the shared secret padded to 128
//! bytes, and every secret then travels AES-128-CBC encrypted with PKCS#7
//! padding and a fresh IV. This keeps values out of reach of D-Bus monitors.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use num_bigint::BigUint;
use zeroize::{Zeroize, Zeroizing};

use crate::secret::Secret;

/// The algorithm name passed to `OpenSession`.
pub(crate) const ALGORITHM: &str = "dh-ietf1024-sha256-aes128-cbc-pkcs7";

/// RFC 2409, section 6.2: the prime of the Second Oakley Group; its generator is 2.
const PRIME: [u8; 128] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC9, 0x0F, 0xDA, 0xA2, 0x21, 0x68, 0xC2, 0x34,
    0xC4, 0xC6, 0x62, 0x8B, 0x80, 0xDC, 0x1C, 0xD1, 0x29, 0x02, 0x4E, 0x08, 0x8A, 0x67, 0xCC, 0x74,
    0x02, 0x0B, 0xBE, 0xA6, 0x3B, 0x13, 0x9B, 0x22, 0x51, 0x4A, 0x08, 0x79, 0x8E, 0x34, 0x04, 0xDD,
    0xEF, 0x95, 0x19, 0xB3, 0xCD, 0x3A, 0x43, 0x1B, 0x30, 0x2B, 0x0A, 0x6D, 0xF2, 0x5F, 0x14, 0x37,
    0x4F, 0xE1, 0x35, 0x6D, 0x6D, 0x51, 0xC2, 0x45, 0xE4, 0x85, 0xB5, 0x76, 0x62, 0x5E, 0x7E, 0xC6,
    0xF4, 0x4C, 0x42, 0xE9, 0xA6, 0x37, 0xED, 0x6B, 0x0B, 0xFF, 0x5C, 0xB6, 0xF4, 0x06, 0xB7, 0xED,
    0xEE, 0x38, 0x6B, 0xFB, 0x5A, 0x89, 0x9F, 0xA5, 0xAE, 0x9F, 0x24, 0x11, 0x7C, 0x4B, 0x1F, 0xE6,
    0x49, 0x28, 0x66, 0x51, 0xEC, 0xE6, 0x53, 0x81, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
];

type Encryptor = cbc::Encryptor<aes::Aes128>;
type Decryptor = cbc::Decryptor<aes::Aes128>;

/// Our half of the key exchange.
///
/// What is wiped, and what cannot be. Our own copies of the secrets, the
/// exponent and the shared secret, live only in `Zeroizing` buffers and in
/// `BigUint`s that `wipe` overwrites before they are dropped. A `BigUint`
/// is built from `Zeroizing` words with `assign_from_slice`, never with
/// `from_bytes_be` (which makes a reversed copy it frees unwiped), and the
/// shared secret is read out digit by digit, never with `to_bytes_be`
/// (another unwiped copy).
///
/// What remains is inside num-bigint's `modpow` (Montgomery multiplication,
/// for our odd prime), which frees its scratch buffers unwiped: each of its
/// ~330 multiplications fills a 2n-digit scratch vector and copies the
/// result out. For our public key those are powers of 2 by prefixes of the
/// exponent, from which the exponent follows only by a discrete logarithm
/// (easy for the first few 4-bit windows, as hard as the exchange for the
/// rest). For the shared secret, the last one (back out of Montgomery
/// form) holds the shared secret itself. Measured with a test allocator
/// that scans every freed block for either secret (a one-off, as the
/// unit-test binary's allocator belongs to src/secret.rs): `derive` plus
/// drop leave exactly that 1 block (the code before this left 4: 3 of the
/// shared secret, 1 of the exponent, plus `generate`'s copy). It stays in
/// the heap until the allocator reuses it, at most as long as the run:
/// with-secrets then execs the command, which replaces the whole address
/// space, or exits. Anything able to read our heap meanwhile could read
/// the session key in use, and the values themselves, just as well.
pub(crate) struct KeyPair {
    /// The exponent, as 32-bit words, least significant first; boxed, so
    /// moving the pair leaves no copy of it behind on the stack.
    private: Box<Zeroizing<[u32; EXPONENT_WORDS]>>,
    /// The public key to send, big-endian.
    pub(crate) public: Vec<u8>,
}

/// A 256-bit exponent, in 32-bit words.
const EXPONENT_WORDS: usize = 8;

impl KeyPair {
    pub(crate) fn generate() -> Result<Self, String> {
        // A 256-bit exponent, not a 1024-bit one: both modpows sit on the
        // critical path of every run, and a quarter of the exponent is about
        // a quarter of their cost. The group itself gives about 80 bits of
        // security; the best attack on a short exponent (Pollard's kangaroo)
        // costs 2^128, so nothing is lost (NIST SP 800-56A asks for an
        // exponent of twice the security strength).
        let mut private = Box::new(Zeroizing::new([0u32; EXPONENT_WORDS]));
        let mut bytes = Zeroizing::new([0u8; EXPONENT_WORDS * 4]);
        getrandom::getrandom(bytes.as_mut()).map_err(|err| format!("no randomness: {err}"))?;
        for (word, chunk) in private.iter_mut().zip(bytes.chunks_exact(4)) {
            *word = u32::from_le_bytes(chunk.try_into().expect("4 bytes"));
        }
        let mut exponent = secret_number(&private[..]);
        let public = BigUint::from(2u8)
            .modpow(&exponent, &BigUint::from_bytes_be(&PRIME))
            .to_bytes_be();
        wipe(&mut exponent);
        Ok(Self { private, public })
    }

    /// Derives the session key from the service's public key.
    pub(crate) fn derive(&self, server_public: &[u8]) -> Result<SessionKey, String> {
        let prime = BigUint::from_bytes_be(&PRIME);
        let theirs = BigUint::from_bytes_be(server_public);
        // Reject the degenerate keys 0, 1 and p-1, which would fix the secret.
        if theirs <= BigUint::from(1u8) || theirs >= &prime - 1u8 {
            return Err("the service sent an invalid public key".into());
        }
        let mut exponent = secret_number(&self.private[..]);
        let mut shared = theirs.modpow(&exponent, &prime);
        wipe(&mut exponent);
        // Big-endian, padded to 128 bytes, straight from the digits.
        let mut padded = Zeroizing::new([0u8; 128]);
        for (index, digit) in shared.iter_u64_digits().enumerate() {
            let end = 128 - 8 * index;
            padded[end - 8..end].copy_from_slice(&digit.to_be_bytes());
        }
        wipe(&mut shared);
        let mut key = Zeroizing::new([0u8; 16]);
        hkdf::Hkdf::<sha2::Sha256>::new(None, padded.as_ref())
            .expand(&[], key.as_mut())
            .expect("16 bytes is a valid HKDF-SHA256 length");
        Ok(SessionKey(*key))
    }
}

/// A `BigUint` holding `words` (least significant first), made without a
/// copy that is freed unwiped: `assign_from_slice` writes the digits
/// straight into the number's own buffer.
fn secret_number(words: &[u32]) -> BigUint {
    let mut number = BigUint::default();
    number.assign_from_slice(words);
    number
}

/// Overwrites `number`'s digits where they are, as BigUint has no zeroize.
///
/// `assign_from_slice` clears the digit vector, which keeps its buffer, and
/// writes the new digits into that same buffer. Assigning as many words as
/// the number has, all zero but the top one (so that normalizing keeps the
/// buffer rather than freeing it), overwrites every digit in place;
/// `black_box` keeps the compiler from dropping those writes as dead.
fn wipe(number: &mut BigUint) {
    let words = number.iter_u64_digits().len() * 2;
    if words == 0 {
        return;
    }
    let mut overwrite = vec![0u32; words];
    overwrite[words - 1] = 1;
    number.assign_from_slice(&overwrite);
    std::hint::black_box(&*number);
}

/// The AES key of an open session.
pub(crate) struct SessionKey([u8; 16]);

impl Drop for SessionKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl SessionKey {
    /// Returns (IV, ciphertext).
    pub(crate) fn encrypt(&self, secret: &Secret) -> Result<(Vec<u8>, Vec<u8>), String> {
        let mut iv = [0u8; 16];
        getrandom::getrandom(&mut iv).map_err(|err| format!("no randomness: {err}"))?;
        let ciphertext = Encryptor::new(&self.0.into(), &iv.into())
            .encrypt_padded_vec_mut::<Pkcs7>(secret.expose());
        Ok((iv.to_vec(), ciphertext))
    }

    pub(crate) fn decrypt(&self, iv: &[u8], ciphertext: &[u8]) -> Result<Secret, String> {
        let iv: [u8; 16] = iv
            .try_into()
            .map_err(|_| format!("the service sent a {}-byte IV", iv.len()))?;
        // Decrypt in place inside the buffer that becomes the Secret, so the
        // plaintext never sits in a buffer that is not wiped.
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        let len = Decryptor::new(&self.0.into(), &iv.into())
            .decrypt_padded_mut::<Pkcs7>(&mut buffer)
            .map_err(|_| "a secret failed to decrypt (bad padding)".to_owned())?
            .len();
        buffer.truncate(len);
        Ok(Secret::new(std::mem::take(&mut *buffer)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_derive_the_same_key_and_values_round_trip() {
        let ours = KeyPair::generate().unwrap();
        let theirs = KeyPair::generate().unwrap();
        let a = ours.derive(&theirs.public).unwrap();
        let b = theirs.derive(&ours.public).unwrap();
        assert_eq!(a.0, b.0);
        for value in ["", "x", "exactly sixteen!", "ünïcödé\nline\0nul"] {
            let (iv, ciphertext) = a.encrypt(&Secret::from(value)).unwrap();
            assert_ne!(ciphertext, value.as_bytes());
            assert_eq!(ciphertext.len() % 16, 0);
            assert_eq!(
                b.decrypt(&iv, &ciphertext).unwrap().expose(),
                value.as_bytes()
            );
        }
    }

    /// A benchmark, not a test: `cargo test --lib dh_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "prints timings"]
    fn dh_cost() {
        let runs = 50;
        let start = std::time::Instant::now();
        for _ in 0..runs {
            let ours = KeyPair::generate().unwrap();
            let theirs = KeyPair::generate().unwrap();
            ours.derive(&theirs.public).unwrap();
        }
        let each = start.elapsed() / (runs * 2);
        eprintln!("key pair, or key derivation: {each:?} each (a run pays one of each)");
    }

    #[test]
    fn the_exponent_is_zeroed_when_the_pair_is_dropped() {
        let mut pair = std::mem::ManuallyDrop::new(KeyPair::generate().unwrap());
        let words: *const [u32; EXPONENT_WORDS] = &**pair.private;
        // SAFETY: `words` points into the box, which stays allocated: the
        // ManuallyDrop never frees it, and drop_in_place only runs the
        // Zeroizing's drop. It is read once that drop has run.
        let after = unsafe {
            assert_ne!(*words, [0; EXPONENT_WORDS]);
            std::ptr::drop_in_place::<Zeroizing<[u32; EXPONENT_WORDS]>>(&mut *pair.private);
            *words
        };
        assert_eq!(after, [0; EXPONENT_WORDS]);
    }

    #[test]
    fn wipe_overwrites_every_digit_and_keeps_the_buffer() {
        let words: Vec<u32> = (1..=32).collect();
        let mut number = secret_number(&words);
        wipe(&mut number);
        // As many digits as before, so the same buffer, all zero but the
        // top one, which keeps normalizing from freeing it.
        let digits: Vec<u64> = number.iter_u64_digits().collect();
        let mut expected = vec![0u64; 16];
        expected[15] = 1 << 32;
        assert_eq!(digits, expected);
        let mut small = secret_number(&[7]);
        wipe(&mut small);
        assert_eq!(small.iter_u64_digits().collect::<Vec<_>>(), [1u64 << 32]);
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap())
            .collect()
    }

    /// The exponent 3 + 2^224, with the public key left out.
    fn fixed_pair() -> KeyPair {
        KeyPair {
            private: Box::new(Zeroizing::new([3, 0, 0, 0, 0, 0, 0, 1])),
            public: Vec::new(),
        }
    }

    /// The vectors come from Python (`pow`, then `hmac`/`hashlib` for
    /// HKDF-SHA256 with no salt and no info): 3 and 327 raised to 3 + 2^224
    /// mod the prime, padded to 128 bytes. 327's shared secret starts with a
    /// zero byte, so a derivation that skipped the padding would differ.
    #[test]
    fn derive_matches_keys_computed_elsewhere() {
        let pair = fixed_pair();
        assert_eq!(
            pair.derive(&[3]).unwrap().0.to_vec(),
            hex("e8fa8a75c1b7fe4279ee8c2c3ef7b42f")
        );
        assert_eq!(
            pair.derive(&327u16.to_be_bytes()).unwrap().0.to_vec(),
            hex("20d717396a73eb847d2c3754e3ca7f00")
        );
    }

    /// NIST SP 800-38A F.2.1 (CBC-AES128), its first block, with the PKCS#7
    /// block that follows it from `openssl enc -aes-128-cbc`.
    #[test]
    fn decrypt_matches_the_nist_cbc_vector() {
        let key = SessionKey(hex("2b7e151628aed2a6abf7158809cf4f3c").try_into().unwrap());
        let iv = hex("000102030405060708090a0b0c0d0e0f");
        let ciphertext = hex("7649abac8119b246cee98e9b12e9197d8964e0b149c10b7b682e6e39aaeb731c");
        assert_eq!(
            key.decrypt(&iv, &ciphertext).unwrap().expose(),
            hex("6bc1bee22e409f96e93d7e117393172a")
        );
        let short = hex("db5bf1644ae847810f10a14cee7b881b");
        assert_eq!(key.decrypt(&iv, &short).unwrap().expose(), b"hunter2");
        assert_eq!(
            key.decrypt(&iv, &ciphertext[..16]).err().unwrap(),
            "a secret failed to decrypt (bad padding)"
        );
    }

    #[test]
    fn degenerate_public_keys_are_refused() {
        let ours = KeyPair::generate().unwrap();
        assert!(ours.derive(&[1]).is_err());
        assert!(ours.derive(&[]).is_err());
        let mut p_minus_1 = PRIME;
        p_minus_1[127] -= 1;
        assert!(ours.derive(&p_minus_1).is_err());
    }
}
