//! The published known-answer vectors (official samples and doc, wechatpy), the negative
//! checks, and the smart bot's empty receive id.

use super::*;

const KEY_1: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const CORP_1: &str = "wx5823bf96d3bd56c7";
const KEY_4: &str = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt";
const TOKEN_4: &str = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo";
const CORP_4: &str = "ww1436e0e65a779aee";
const KEY_7: &str = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR";
const CORP_7: &str = "wx49f0ab532d5d035a";

const V2_ENCRYPT: &str = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==";

fn crypt(token: &str, key: &str) -> MsgCrypt {
    MsgCrypt::new(token, key).unwrap()
}

/// Verifies the signature, decrypts, and returns the message after checking the receive id.
fn open(c: &MsgCrypt, sig: &str, ts: &str, nonce: &str, enc: &str, receive_id: &str) -> String {
    c.verify(sig, ts, nonce, enc).unwrap();
    c.decrypt_for(enc, receive_id).unwrap()
}

#[test]
fn v1_url_verification_official_sample() {
    // The sample's query value, percent-encoded as WeCom sends it.
    let echostr = percent_encoding::percent_decode_str(
        "P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D",
    )
    .decode_utf8()
    .unwrap();
    let c = crypt("QDG6eK", KEY_1);
    let sig = "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3";
    assert_eq!(
        open(&c, sig, "1409659589", "263014780", &echostr, CORP_1),
        "1616140317555161061"
    );
}

#[test]
fn v2_xml_message_official_doc() {
    let c = crypt("QDG6eK", KEY_1);
    let sig = "477715d11cdb4164915debcba66cb864d751f3e6";
    let plain = open(&c, sig, "1409659813", "1372623149", V2_ENCRYPT, CORP_1);
    assert_eq!(plain.len(), 284);
    assert_eq!(
        plain,
        "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n\
         <FromUserName><![CDATA[mycreate]]></FromUserName>\n\
         <CreateTime>1409659813</CreateTime>\n\
         <MsgType><![CDATA[text]]></MsgType>\n\
         <Content><![CDATA[hello]]></Content>\n\
         <MsgId>4561255354251345929</MsgId>\n\
         <AgentID>218</AgentID>\n\
         </xml>"
    );
}

#[test]
fn v3_json_message_official_go_sample() {
    let c = crypt("QDG6eK", KEY_1);
    let enc = "CZWs4CWRpI4VolQlvn4dlEC1alN2MUEY2VklGehgBVLBrlVF7SyT+SV+Toj43l4ayJ9UMGKphktKKmP7B2j/P1ey67XB8PBgS7Wr5/8+w/yWriZv3Vmoo/MH3/1HsIWZrPQ3N2mJrelStIfI2Y8kLKXA7EhfZgZX4o+ffdkZDM76SEl79Ib9mw7TGjZ9Aw/x/A2VjNbV1E8BtEbRxYYcQippYNw7hr8sFfa3nW1xLdxokt8QkRX83vK3DFP2F6TQFPL2Tu98UwhcUpPvdJBuu1/yiOQIScppV3eOuLWEsko=";
    let sig = "0623cbc5a8cbee5bcc137c70de99575366fc2af3";
    assert_eq!(
        open(&c, sig, "1409659813", "1372623149", enc, CORP_1),
        "{\"ToUserName\":\"wx5823bf96d3bd56c7\",\"FromUserName\":\"mycreate\",\"CreateTime\": 1409659813,\"MsgType\":\"text\",\"Content\":\"hello\",\"MsgId\":4561255354251345929,\"AgentID\": 218}"
    );
}

#[test]
fn v4_url_verification_official_python_sample() {
    let c = crypt(TOKEN_4, KEY_4);
    let enc =
        "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==";
    let sig = "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb";
    assert_eq!(
        open(&c, sig, "1476416373", "47744683", enc, CORP_4),
        "1288432023552776189"
    );
}

#[test]
fn v5_utf8_message_official_python_sample() {
    let c = crypt(TOKEN_4, KEY_4);
    let enc = "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+";
    let sig = "0c3914025cb4b4d68103f6bfc8db550f79dcf48e";
    let plain = open(&c, sig, "1476422779", "1597212914", enc, CORP_4);
    assert_eq!(plain.len(), 228, "the length field counts UTF-8 bytes");
    assert_eq!(
        plain,
        "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName><CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content><MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>"
    );
}

#[test]
fn v6_inner_receive_id_wins_over_the_outer_one() {
    let c = crypt(TOKEN_4, KEY_4);
    let enc = "cjhLUX7UU4yCSelv1vz7T0zT8huF51bAMVWriNvO1FMegHrQZNrtvRxbwf0fUPsFvwqR0U0fgiJNEA5Y30F2MoI2S7vv3EjVQ68C0cjw9frBoUE2Hj0BvFp9h3u6Vbsg4lc1C8AtHdaN8orKuNKkLRLuYEL52R1J3v8olJGZRLnRdVKIivixmX/eQpzgeExtp20jI1HxRP1AAZ6xZoILdqDPO549LO4WeG+685JRUTdiwcY5fjZlqeMxuT4PpMn1X9OWsS7NRj06Wa5E3Tvg4twjWp39KPfOdRte6P1T4JU=";
    let sig = "e3647471e395139e2308c1fa963f2d648a00b90e";
    // The outer body says wx5823bf96d3bd56c7; only the authenticated inner id counts.
    let plain = open(&c, sig, "1409659813", "1372623149", enc, CORP_4);
    assert!(plain.starts_with("{ \"ToUserName\": \"wx5823bf96d3bd56c7\""));
    assert_eq!(c.decrypt_for(enc, CORP_1), Err(CryptoError::ReceiveId));
}

#[test]
fn v7_url_verification_wechatpy_and_its_negative() {
    let c = crypt("123456", KEY_7);
    let enc =
        "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==";
    let sig = "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96";
    assert_eq!(
        open(&c, sig, "1411443780", "437374425", enc, CORP_7),
        "5927782489442352469"
    );
    assert_eq!(
        c.verify(sig, "1411443780", "437374424", enc),
        Err(CryptoError::Signature)
    );
}

#[test]
fn v8_xml_message_wechatpy() {
    let c = crypt("123456", KEY_7);
    let enc = "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=";
    let sig = "74d92dfeb87ba7c714f89d98870ae5eb62dff26d";
    assert_eq!(
        open(&c, sig, "1411525903", "461056294", enc, CORP_7),
        "<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n<FromUserName><![CDATA[messense]]></FromUserName>\n<CreateTime>1411525903</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<MsgId>4363689963896700987</MsgId>\n<AgentID>1</AgentID>\n</xml>"
    );
}

#[test]
fn v9_encrypted_reply_is_byte_exact() {
    let c = crypt("123456", KEY_7);
    let msg = "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>";
    let enc = c.encrypt_with(msg, CORP_7, b"1234567890123456");
    assert_eq!(
        c.reply_xml(&enc, "1411525903", "461056294"),
        "<xml>\n<Encrypt><![CDATA[9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3]]></Encrypt>\n<MsgSignature><![CDATA[407518b7649e86ef23978113f92d27afa9296533]]></MsgSignature>\n<TimeStamp>1411525903</TimeStamp>\n<Nonce><![CDATA[461056294]]></Nonce>\n</xml>"
    );
}

#[test]
fn negative_checks_on_v2() {
    let c = crypt("QDG6eK", KEY_1);
    let sig = "477715d11cdb4164915debcba66cb864d751f3e6";
    assert_eq!(
        c.verify(sig, "1409659813", "1372623148", V2_ENCRYPT),
        Err(CryptoError::Signature)
    );
    assert_eq!(CryptoError::Signature.code(), -40001);
    let wrong = c.decrypt_for(V2_ENCRYPT, "wx0000000000000000").unwrap_err();
    assert_eq!((wrong.code(), wrong), (-40005, CryptoError::ReceiveId));
    let short = MsgCrypt::new("QDG6eK", &KEY_1[..42]).unwrap_err();
    assert_eq!(short.code(), -40004);
    assert!(short.to_string().contains("42 characters"), "{short}");
}

#[test]
fn a_key_of_43_characters_that_is_not_base64_is_named_as_such() {
    let err = MsgCrypt::new("t", &"!".repeat(43)).unwrap_err();
    assert_eq!(err.code(), -40004);
    assert!(
        err.to_string().contains("does not decode to 32 bytes"),
        "{err}"
    );
}

#[test]
fn tampered_ciphertexts_are_refused_without_panicking() {
    let c = crypt("QDG6eK", KEY_1);
    assert_eq!(c.decrypt("not base64!"), Err(CryptoError::Base64));
    assert_eq!(
        c.decrypt("AAAA").unwrap_err(),
        CryptoError::Decrypt("not whole 32-byte blocks")
    );
    // Another key decrypts to garbage: the padding check catches it (or, rarely, the layout).
    let other = crypt("QDG6eK", KEY_7);
    assert!(other.decrypt(V2_ENCRYPT).is_err());
    // Flipping one bit in the last block breaks the padding.
    let mut bytes = STANDARD.decode(V2_ENCRYPT).unwrap();
    let n = bytes.len();
    bytes[n - 17] ^= 0x01;
    assert!(c.decrypt(&STANDARD.encode(&bytes)).is_err());
}

#[test]
fn the_smart_bot_round_trip_uses_an_empty_receive_id() {
    let c = crypt("QDG6eK", KEY_1);
    let body = r#"{"msgid":"CAIQ16HMjQYY","chattype":"group","msgtype":"text","text":{"content":"@groupguard stats"}}"#;
    let enc = c.encrypt_with(body, "", b"1234567890123456");
    // Deterministic with a fixed prefix, like V9.
    assert_eq!(enc, c.encrypt_with(body, "", b"1234567890123456"));
    let sig = c.signature("1700000000", "n1", &enc);
    assert_eq!(open(&c, &sig, "1700000000", "n1", &enc, ""), body);
    assert_eq!(c.decrypt_for(&enc, CORP_1), Err(CryptoError::ReceiveId));
    // A random prefix varies the ciphertext, not the message.
    let a = c.encrypt(body, "");
    assert_ne!(a, c.encrypt(body, ""));
    assert_eq!(c.decrypt_for(&a, "").unwrap(), body);
}

#[test]
fn messages_of_every_length_round_trip_with_whole_block_padding() {
    let c = crypt("t", KEY_1);
    for n in 0..70 {
        let msg = "x".repeat(n);
        let enc = c.encrypt(&msg, CORP_1);
        let raw = STANDARD.decode(&enc).unwrap();
        assert_eq!(raw.len() % 32, 0);
        assert_eq!(c.decrypt_for(&enc, CORP_1).unwrap(), msg);
    }
}
