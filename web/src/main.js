// Entry point: the sign-in page (user and password through the login API, or a pasted
// token), then the app. A token kept from an earlier visit skips the sign-in.

import * as auth from './auth.js';
import { App } from './app.js';
import { $ } from './dom.js';
import { deviceId } from './ids.js';

function showSignIn(message) {
  document.body.classList.remove('signed-in', 'chat-open');
  $('#app').hidden = true;
  $('#signin').hidden = false;
  $('#signin-error').textContent = message || '';
  $('#user').focus();
}

function startApp(session) {
  $('#signin').hidden = true;
  $('#app').hidden = false;
  document.body.classList.add('signed-in');
  new App(session, deviceId(), showSignIn).start();
}

async function signIn(getToken) {
  const button = $('#signin-button');
  button.disabled = true;
  $('#signin-error').textContent = '';
  try {
    const session = auth.save(await getToken());
    $('#password').value = '';
    $('#token').value = '';
    startApp(session);
  } catch (e) {
    const wait = e.retryAfter ? ` (try again in ${e.retryAfter} s)` : '';
    $('#signin-error').textContent = (e.message || String(e)) + wait;
  } finally {
    button.disabled = false;
  }
}

$('#signin-form').onsubmit = (ev) => {
  ev.preventDefault();
  signIn(() => auth.login($('#user').value.trim(), $('#password').value));
};
$('#token-form').onsubmit = (ev) => {
  ev.preventDefault();
  signIn(async () => $('#token').value.trim());
};

const kept = auth.load();
if (kept) startApp(kept);
else showSignIn();
