//! The callback crypto every WeCom callback uses ("WXBizMsgCrypt"): a SHA-1 signature over the
//! sorted token, timestamp, nonce and ciphertext, and AES-256-CBC with the key's first 16
//! bytes as IV and PKCS#7 padding to 32-byte blocks. The plaintext is
//! `random16 | u32be length | message | receive id`, where the receive id names the scenario:
//! the corp id for app and customer-contact callbacks, empty for the smart bot.

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// PKCS#7 pads to this, not to AES's 16-byte block.
const BLOCK: usize = 32;
/// `random16 | u32be length`.
const HEADER: usize = 20;

/// The key's base64 has non-zero trailing bits, which the strict engine refuses.
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A failure, with the code the official libraries give it, for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The signature does not match.
    #[error("the signature does not match (-40001)")]
    Signature,
    /// The body could not be parsed.
    #[error("the body is malformed: {0} (-40002)")]
    Parse(String),
    /// The `EncodingAESKey` is not 43 characters of base64 decoding to 32 bytes.
    #[error("{0} (-40004)")]
    IllegalAesKey(String),
    /// The message was meant for another receiver (corp id, or the smart bot's empty one).
    #[error("the message is for another receive id (-40005)")]
    ReceiveId,
    /// The ciphertext is not whole blocks, or its padding is wrong.
    #[error("the ciphertext does not decrypt: {0} (-40007)")]
    Decrypt(&'static str),
    /// The decrypted layout is inconsistent (length field past the end, text not UTF-8).
    #[error("the decrypted message is malformed: {0} (-40008)")]
    IllegalBuffer(&'static str),
    /// The ciphertext is not base64.
    #[error("the ciphertext is not base64 (-40010)")]
    Base64,
}

impl CryptoError {
    /// The official library's code for this failure.
    pub fn code(&self) -> i32 {
        match self {
            CryptoError::Signature => -40001,
            CryptoError::Parse(_) => -40002,
            CryptoError::IllegalAesKey(_) => -40004,
            CryptoError::ReceiveId => -40005,
            CryptoError::Decrypt(_) => -40007,
            CryptoError::IllegalBuffer(_) => -40008,
            CryptoError::Base64 => -40010,
        }
    }
}

/// The token and key of one callback configuration. Never printed.
#[derive(Clone)]
pub struct MsgCrypt {
    token: String,
    key: [u8; 32],
}

impl std::fmt::Debug for MsgCrypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MsgCrypt(***)")
    }
}

impl MsgCrypt {
    /// Checks the `EncodingAESKey` (43 characters, decoding to 32 bytes).
    pub fn new(token: &str, encoding_aes_key: &str) -> Result<MsgCrypt, CryptoError> {
        if encoding_aes_key.len() != 43 {
            return Err(CryptoError::IllegalAesKey(format!(
                "the EncodingAESKey has {} characters; WeCom's have 43",
                encoding_aes_key.chars().count()
            )));
        }
        let bytes = KEY_BASE64
            .decode(format!("{encoding_aes_key}="))
            .map_err(|_| {
                CryptoError::IllegalAesKey(
                    "the EncodingAESKey does not decode to 32 bytes: it must be base64 letters and digits"
                        .to_owned(),
                )
            })?;
        let key = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
            CryptoError::IllegalAesKey("the EncodingAESKey does not decode to 32 bytes".to_owned())
        })?;
        Ok(MsgCrypt {
            token: token.to_owned(),
            key,
        })
    }

    /// `sha1(sorted(token, timestamp, nonce, encrypted))` in lower-case hex.
    pub fn signature(&self, timestamp: &str, nonce: &str, encrypted: &str) -> String {
        let mut parts = [self.token.as_str(), timestamp, nonce, encrypted];
        parts.sort_unstable();
        let mut hasher = Sha1::new();
        for part in parts {
            hasher.update(part.as_bytes());
        }
        hex::encode(hasher.finalize())
    }

    /// Checks a signature in constant time.
    pub fn verify(
        &self,
        signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypted: &str,
    ) -> Result<(), CryptoError> {
        let expected = self.signature(timestamp, nonce, encrypted);
        if bool::from(
            expected
                .as_bytes()
                .ct_eq(signature.to_ascii_lowercase().as_bytes()),
        ) {
            Ok(())
        } else {
            Err(CryptoError::Signature)
        }
    }

    /// Decrypts and returns the message and the receive id it carries.
    pub fn decrypt(&self, encrypted: &str) -> Result<(String, String), CryptoError> {
        let mut buf = STANDARD
            .decode(encrypted.trim())
            .map_err(|_| CryptoError::Base64)?;
        if buf.is_empty() || !buf.len().is_multiple_of(BLOCK) {
            return Err(CryptoError::Decrypt("not whole 32-byte blocks"));
        }
        let plain = cbc::Decryptor::<aes::Aes256>::new(&self.key.into(), self.iv().into())
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map_err(|_| CryptoError::Decrypt("not whole blocks"))?;
        let pad = usize::from(*plain.last().unwrap_or(&0));
        if !(1..=BLOCK).contains(&pad)
            || pad > plain.len()
            || plain[plain.len() - pad..]
                .iter()
                .any(|&b| usize::from(b) != pad)
        {
            return Err(CryptoError::Decrypt("bad padding"));
        }
        let plain = &plain[..plain.len() - pad];
        if plain.len() < HEADER {
            return Err(CryptoError::IllegalBuffer("shorter than its header"));
        }
        let length = u32::from_be_bytes([plain[16], plain[17], plain[18], plain[19]]) as usize;
        let rest = &plain[HEADER..];
        if length > rest.len() {
            return Err(CryptoError::IllegalBuffer(
                "the length field runs past the end",
            ));
        }
        let (message, receive_id) = rest.split_at(length);
        let message = String::from_utf8(message.to_vec())
            .map_err(|_| CryptoError::IllegalBuffer("the message is not UTF-8"))?;
        let receive_id = String::from_utf8(receive_id.to_vec())
            .map_err(|_| CryptoError::IllegalBuffer("the receive id is not UTF-8"))?;
        Ok((message, receive_id))
    }

    /// Decrypts a message that must carry `receive_id`.
    pub fn decrypt_for(&self, encrypted: &str, receive_id: &str) -> Result<String, CryptoError> {
        let (message, carried) = self.decrypt(encrypted)?;
        if carried == receive_id {
            Ok(message)
        } else {
            Err(CryptoError::ReceiveId)
        }
    }

    /// Encrypts `message` for `receive_id` with a given random prefix (fixed in tests).
    pub fn encrypt_with(&self, message: &str, receive_id: &str, random: &[u8; 16]) -> String {
        let mut plain = Vec::with_capacity(HEADER + message.len() + receive_id.len() + BLOCK);
        plain.extend_from_slice(random);
        plain.extend_from_slice(&(message.len() as u32).to_be_bytes());
        plain.extend_from_slice(message.as_bytes());
        plain.extend_from_slice(receive_id.as_bytes());
        let pad = BLOCK - plain.len() % BLOCK;
        plain.resize(plain.len() + pad, pad as u8);
        let length = plain.len();
        let cipher = cbc::Encryptor::<aes::Aes256>::new(&self.key.into(), self.iv().into())
            .encrypt_padded_mut::<NoPadding>(&mut plain, length)
            .expect("whole blocks by construction");
        STANDARD.encode(cipher)
    }

    /// Encrypts `message` for `receive_id` with a fresh random prefix.
    pub fn encrypt(&self, message: &str, receive_id: &str) -> String {
        self.encrypt_with(message, receive_id, &random_prefix())
    }

    /// The passive-reply envelope of the official libraries, byte for byte.
    pub fn reply_xml(&self, encrypted: &str, timestamp: &str, nonce: &str) -> String {
        let signature = self.signature(timestamp, nonce, encrypted);
        format!(
            "<xml>\n<Encrypt><![CDATA[{encrypted}]]></Encrypt>\n\
             <MsgSignature><![CDATA[{signature}]]></MsgSignature>\n\
             <TimeStamp>{timestamp}</TimeStamp>\n<Nonce><![CDATA[{nonce}]]></Nonce>\n</xml>"
        )
    }

    fn iv(&self) -> &[u8; 16] {
        self.key[..16].try_into().expect("the key has 32 bytes")
    }
}

/// 16 random letters and digits, like the official libraries' prefix.
pub fn random_prefix() -> [u8; 16] {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut bytes = [0u8; 16];
    // The prefix only varies the ciphertext; a failing OS source leaves it fixed, still valid.
    let _ = getrandom::fill(&mut bytes);
    bytes.map(|b| ALPHABET[usize::from(b) % ALPHABET.len()])
}

#[cfg(test)]
mod tests;
