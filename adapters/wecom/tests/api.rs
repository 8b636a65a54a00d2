//! The API client against the loopback fake: the token cache, refresh after an early
//! expiry, back-off on 45009, retries of -1, and errors that never show the secret or token.

use groupguard_core::platform::{AdapterError, AdapterErrorKind};
use groupguard_wecom::api::{Api, ApiError};
use groupguard_wecom::config::Secret;
use groupguard_wecom::fake::{CORP_ID, FakeWecom, SECRET};
use serde_json::{Value, json};

async fn setup() -> (FakeWecom, Api) {
    let fake = FakeWecom::start().await;
    fake.put_group(
        json!({ "chat_id": "wrG1", "owner": "boss", "member_list": [], "member_version": "v1" }),
    );
    let api = Api::new(&fake.base, CORP_ID, Secret::new(SECRET));
    (fake, api)
}

async fn group(api: &Api) -> Result<Value, ApiError> {
    api.post(
        "externalcontact/groupchat/get",
        &json!({ "chat_id": "wrG1", "need_name": 1 }),
    )
    .await
}

#[tokio::test]
async fn one_token_serves_many_calls_and_concurrent_callers_share_one_refresh() {
    let (fake, api) = setup().await;
    let api = std::sync::Arc::new(api);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let api = std::sync::Arc::clone(&api);
            tokio::spawn(async move { group(&api).await })
        })
        .collect();
    for call in calls {
        let answer = call.await.unwrap().unwrap();
        assert_eq!(answer["group_chat"]["owner"], "boss");
    }
    assert_eq!(fake.token_requests(), 1);
}

#[tokio::test]
async fn a_token_that_expires_mid_run_is_refreshed_once_and_the_call_retried() {
    let (fake, api) = setup().await;
    group(&api).await.unwrap();
    fake.expire_token();
    let answer = group(&api).await.unwrap();
    assert_eq!(answer["group_chat"]["chat_id"], "wrG1");
    assert_eq!(fake.token_requests(), 2);
    // A second refusal after the refresh is an error, not a loop.
    fake.fail("externalcontact/groupchat/get", &[40014, 40014]);
    let err = group(&api).await.unwrap_err();
    assert_eq!(err.code(), Some(40014));
    assert_eq!(fake.token_requests(), 3);
}

#[tokio::test]
async fn a_45009_blocks_that_api_for_a_minute_without_calling_it_again() {
    let (fake, api) = setup().await;
    fake.fail("externalcontact/groupchat/get", &[45009]);
    let err = group(&api).await.unwrap_err();
    let ApiError::RateLimited { retry_after } = err else {
        panic!("{err:?}");
    };
    assert_eq!(retry_after.as_secs(), 60);
    let again = group(&api).await.unwrap_err();
    assert!(matches!(again, ApiError::RateLimited { retry_after } if retry_after.as_secs() <= 60));
    assert_eq!(
        fake.calls("externalcontact/groupchat/get").len(),
        1,
        "no call while blocked"
    );
    // Other APIs are not blocked.
    let sent = api
        .send_message(&["boss"], &json!({ "touser": "boss", "msgtype": "text", "agentid": 1, "text": { "content": "hi" } }))
        .await;
    assert!(sent.is_ok(), "{sent:?}");
    let kind = AdapterError::from(ApiError::RateLimited { retry_after }).kind;
    assert!(matches!(kind, AdapterErrorKind::RateLimited { .. }));
}

#[tokio::test]
async fn system_busy_is_retried_with_backoff() {
    let (fake, api) = setup().await;
    fake.fail("externalcontact/groupchat/get", &[-1, -1]);
    assert!(group(&api).await.is_ok());
    assert_eq!(fake.calls("externalcontact/groupchat/get").len(), 3);
    fake.fail("externalcontact/groupchat/get", &[-1, -1, -1]);
    let err = group(&api).await.unwrap_err();
    assert_eq!(AdapterError::from(err).kind, AdapterErrorKind::Transient);
}

#[tokio::test]
async fn members_get_at_most_thirty_app_messages_a_minute() {
    let (fake, api) = setup().await;
    let body =
        json!({ "touser": "boss", "msgtype": "text", "agentid": 1, "text": { "content": "x" } });
    for _ in 0..30 {
        api.send_message(&["boss"], &body).await.unwrap();
    }
    let err = api.send_message(&["boss"], &body).await.unwrap_err();
    assert!(matches!(err, ApiError::RateLimited { .. }), "{err:?}");
    assert_eq!(fake.calls("message/send").len(), 30);
    assert!(api.send_message(&["other"], &body).await.is_ok());
}

#[tokio::test]
async fn errors_never_show_the_secret_or_the_token() {
    let fake = FakeWecom::start().await;
    let wrong = Api::new(&fake.base, CORP_ID, Secret::new("not-the-secret"));
    let err = group(&wrong).await.unwrap_err();
    assert_eq!(err.code(), Some(40001));
    assert!(!err.to_string().contains("not-the-secret"), "{err}");
    // A dead host: the transport error must not carry the URL with its token.
    let (fake, api) = setup().await;
    group(&api).await.unwrap();
    let dead = Api::new("http://127.0.0.1:9", CORP_ID, Secret::new(SECRET));
    let err = group(&dead).await.unwrap_err();
    assert!(matches!(err, ApiError::Transport(_)), "{err:?}");
    for shown in [err.to_string(), format!("{err:?}"), format!("{api:?}")] {
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains("fake-token"), "{shown}");
    }
    assert_eq!(fake.token_requests(), 1);
}
