//! Carrying out actions on WeCom, honestly. In customer groups (`wr…`) there is no API to
//! remove a customer, recall a message, post in the group or mute anyone: the executor says
//! so per group, and the dispatcher turns each such action into a notice to the owner and
//! admins, sent as a markdown app message. In chats the app created, kicks go through
//! `appchat/update` and warnings through `appchat/send`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use groupguard_core::model::{GroupId, MessageId, Platform, ReplyTo, UserId};
use groupguard_core::platform::{
    ActionExecutor, ActionRequest, AdapterError, AdapterErrorKind, Capabilities, Capability,
    Lacking,
};
use groupguard_core::reply::Reply;
use groupguard_core::verdict::Action;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Inner;
use crate::api::ApiError;
use crate::inbound::APP_GROUP;
use crate::render;

/// How long WeCom holds back an identical app message: a retried notice within it is not
/// shown again.
const DUPLICATE_CHECK_SECONDS: u64 = 4 * 3600;

/// What kind of chat a group id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chat {
    /// A customer group (客户群).
    Customer,
    /// A group chat this app created (`appchat`).
    App,
    /// The app's own conversations, or a chat the app cannot act in.
    Other,
}

/// The executor.
#[derive(Debug)]
pub struct WecomExecutor {
    inner: Arc<Inner>,
    /// Whether a chat id is an app chat, as `appchat/get` said.
    app_chats: Mutex<HashMap<GroupId, bool>>,
}

#[derive(Deserialize)]
struct AppChatAnswer {
    chat_info: AppChatInfo,
}

#[derive(Deserialize)]
struct AppChatInfo {
    #[serde(default)]
    owner: String,
}

impl WecomExecutor {
    pub(crate) fn new(inner: Arc<Inner>) -> WecomExecutor {
        WecomExecutor {
            inner,
            app_chats: Mutex::new(HashMap::new()),
        }
    }

    async fn chat(&self, group: &GroupId) -> Chat {
        if group.as_str() == APP_GROUP {
            return Chat::Other;
        }
        if group.as_str().starts_with("wr") || self.inner.groups.get(group.as_str()).is_some() {
            return Chat::Customer;
        }
        if let Some(&app) = self.lock_app_chats().get(group) {
            return if app { Chat::App } else { Chat::Other };
        }
        match self.app_chat_owner(group).await {
            Ok(_) => {
                self.lock_app_chats().insert(group.clone(), true);
                Chat::App
            }
            Err(e) if AdapterError::from(e.clone()).kind == AdapterErrorKind::NotFound => {
                self.lock_app_chats().insert(group.clone(), false);
                Chat::Other
            }
            Err(e) => {
                tracing::warn!(%group, error = %e, "cannot tell whether a chat is the app's");
                Chat::Other
            }
        }
    }

    fn lock_app_chats(&self) -> std::sync::MutexGuard<'_, HashMap<GroupId, bool>> {
        self.app_chats.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn app_chat_owner(&self, group: &GroupId) -> Result<String, ApiError> {
        let answer: AppChatAnswer = self
            .inner
            .api
            .get("appchat/get", &[("chatid", group.as_str())])
            .await?;
        Ok(answer.chat_info.owner)
    }

    /// Who a notice goes to: the stored owner and admins, else the group's owner as WeCom
    /// says, else groupguard's configured admins; members of the corp only (customers get no
    /// app messages).
    async fn recipients(&self, request: &ActionRequest, chat: Chat) -> Vec<String> {
        let mut ids: Vec<String> = request
            .notify
            .owner
            .iter()
            .chain(&request.notify.admins)
            .map(|u| u.as_str().to_owned())
            .collect();
        if ids.is_empty() {
            match chat {
                Chat::Customer => {
                    if let Some(group) = self.inner.groups.get(request.group.as_str()) {
                        ids.push(group.owner.clone());
                        ids.extend(group.admin_list.iter().map(|a| a.userid.clone()));
                    }
                }
                Chat::App => {
                    if let Ok(owner) = self.app_chat_owner(&request.group).await {
                        ids.push(owner);
                    }
                }
                Chat::Other => {}
            }
        }
        if ids.is_empty() {
            ids.extend(
                self.inner
                    .config
                    .admins
                    .iter()
                    .map(|a| a.as_str().to_owned()),
            );
        }
        ids.retain(|id| !id.is_empty() && is_corp_member(id));
        ids.dedup();
        ids
    }

    async fn notify(
        &self,
        request: &ActionRequest,
        text: &str,
        chat: Chat,
    ) -> Result<(), AdapterError> {
        let to = self.recipients(request, chat).await;
        if to.is_empty() {
            return Err(AdapterError::new(
                AdapterErrorKind::Unsupported,
                "no member of the corp to tell: set [wecom] admins",
            ));
        }
        let group_name = self
            .inner
            .groups
            .get(request.group.as_str())
            .map(|g| g.name.clone())
            .filter(|n| !n.is_empty());
        let content = render::notice(request, group_name.as_deref(), text);
        let to: Vec<&str> = to.iter().map(String::as_str).collect();
        self.inner
            .api
            .send_message(
                &to,
                &json!({
                    "touser": to.join("|"),
                    "msgtype": "markdown",
                    "agentid": self.inner.config.agent_id,
                    "markdown": { "content": content },
                    // The content carries the action's key: a retry is identical, and WeCom
                    // does not show it twice; another action's notice differs.
                    "enable_duplicate_check": 1,
                    "duplicate_check_interval": DUPLICATE_CHECK_SECONDS,
                }),
            )
            .await?;
        Ok(())
    }
}

/// Customers' ids start `wm` or `wo`, robots' `wb`; members of the corp have their userid.
fn is_corp_member(id: &str) -> bool {
    !["wm", "wo", "wb"].iter().any(|p| id.starts_with(p))
}

fn unsupported(why: &str) -> Lacking {
    Lacking::Unsupported(Some(why.to_owned()))
}

#[async_trait]
impl ActionExecutor for WecomExecutor {
    fn platform(&self) -> Platform {
        Platform::WeCom
    }

    async fn capabilities(&self, group: &GroupId) -> Capabilities {
        let notify_only = Capabilities::none().grant(Capability::Notify);
        match self.chat(group).await {
            Chat::Customer => notify_only
                .lack(
                    Capability::Kick,
                    unsupported("WeCom has no API to remove a customer from a customer group"),
                )
                .lack(
                    Capability::Delete,
                    unsupported("WeCom has no API to recall a customer's message"),
                )
                .lack(
                    Capability::Warn,
                    unsupported("apps cannot post in customer groups"),
                )
                .lack(
                    Capability::Timeout,
                    unsupported("WeCom groups have no mute"),
                )
                .lack(
                    Capability::Lockdown,
                    unsupported("WeCom has no API to close a customer group"),
                ),
            Chat::App => Capabilities::none()
                .grant(Capability::Notify)
                .grant(Capability::Kick)
                .grant(Capability::Warn)
                .lack(
                    Capability::Delete,
                    unsupported("WeCom has no API to recall a member's message"),
                )
                .lack(
                    Capability::Timeout,
                    unsupported("WeCom groups have no mute"),
                )
                .lack(
                    Capability::Lockdown,
                    unsupported("WeCom has no API to close a group chat"),
                ),
            Chat::Other => Capability::ALL
                .into_iter()
                .filter(|c| *c != Capability::Notify)
                .fold(notify_only, |caps, c| {
                    caps.lack(c, unsupported("not a group the app can act in"))
                }),
        }
    }

    async fn execute(&self, request: &ActionRequest) -> Result<(), AdapterError> {
        let chat = self.chat(&request.group).await;
        let api = &self.inner.api;
        match (&request.action, chat) {
            (Action::NotifyAdmins { text }, _) => self.notify(request, text, chat).await,
            (Action::Kick, Chat::App) => {
                api.post::<Value>(
                    "appchat/update",
                    &json!({ "chatid": request.group, "del_user_list": [request.member] }),
                )
                .await?;
                Ok(())
            }
            (Action::Warn { text }, Chat::App) => {
                api.post::<Value>(
                    "appchat/send",
                    &json!({
                        "chatid": request.group,
                        "msgtype": "text",
                        "text": { "content": text },
                    }),
                )
                .await?;
                Ok(())
            }
            (action, _) => Err(AdapterError::new(
                AdapterErrorKind::Unsupported,
                format!("WeCom cannot {} here", action.name()),
            )),
        }
    }

    async fn reply(&self, to: &ReplyTo, reply: &Reply) -> Result<(), AdapterError> {
        let body = |reference: Option<&str>| json!({ "msgtype": "markdown", "markdown": { "content": render::reply(reply, reference) } });
        if let Some(handle) = &to.handle {
            // A smart bot's response_url works once: a refusal means it was used or expired.
            return self
                .inner
                .api
                .post_url(handle.expose(), &body(None))
                .await
                .map_err(|e| match e {
                    ApiError::Code { .. } => {
                        AdapterError::new(AdapterErrorKind::Expired, e.to_string())
                    }
                    other => other.into(),
                });
        }
        if !is_corp_member(to.sender.as_str()) {
            return Err(AdapterError::new(
                AdapterErrorKind::Unsupported,
                "WeCom apps cannot message customers",
            ));
        }
        let sender: &UserId = &to.sender;
        // Keyed to the command: a retried answer is not shown twice, while the same answer
        // to another command is.
        let mut message = body(to.message.as_ref().map(MessageId::as_str));
        message["touser"] = json!(sender);
        message["agentid"] = json!(self.inner.config.agent_id);
        if to.message.is_some() {
            message["enable_duplicate_check"] = json!(1);
            message["duplicate_check_interval"] = json!(DUPLICATE_CHECK_SECONDS);
        }
        self.inner
            .api
            .send_message(&[sender.as_str()], &message)
            .await?;
        Ok(())
    }
}
