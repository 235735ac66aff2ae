//! MQTT sign-in with an account password (`[accounts] mqtt_passwords`): a CONNECT whose
//! username names an account and whose password is not a JWT is checked against the
//! store, so any MQTT client works with user and password as on Mosquitto. Everything
//! else (no password, a JWT, the feature off) goes to the token sign-in.

use super::LoginError;
use crate::conn::sign_in::Refusal;
use crate::node::Context;
use roost_auth::Identity;
use rumqttd::protocol::Login;
use tracing::info;

/// `None`: not a password sign-in, use the token path. Otherwise the account's identity,
/// or why it is refused.
pub(crate) async fn sign_in(
    ctx: &Context,
    login: Option<&Login>,
) -> Option<Result<Identity, Refusal>> {
    let accounts = &ctx.accounts;
    let login = login?;
    if !accounts.mqtt_passwords()
        || login.username.is_empty()
        || login.password.is_empty()
        || roost_auth::password::looks_like_jwt(&login.password)
    {
        return None;
    }
    let user = login.username.as_str();
    if let Err(e) = accounts.check_failures(user) {
        info!(user, reason = %e, "password sign-in refused");
        return Some(Err(Refusal::LoginRateLimited));
    }
    let result = accounts.check_password(user, &login.password).await;
    Some(result.map_err(|e| {
        let refusal = match e {
            LoginError::BadCredentials => {
                accounts.count_failure(user);
                Refusal::BadPassword
            }
            LoginError::Disabled => Refusal::AccountDisabled,
            LoginError::RateLimited(_) => Refusal::LoginRateLimited,
            LoginError::Busy | LoginError::Unavailable | LoginError::NoSecret => {
                Refusal::ServerBusy
            }
        };
        info!(user, reason = %e, "password sign-in refused");
        refusal
    }))
}
