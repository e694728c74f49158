// The Click & Cook page: logs in, keeps a GatehouseClient connected, turns buttons into game
// commands (docs/examples/demo-game.md) and shows the state and every envelope on the wire.

import { ApiError, login, logout, register } from './api.js';
import { GatehouseClient } from './gatehouse.js';

// How often the page asks the game to credit passive income (stoves).
const PASSIVE_INTERVAL_MS = 5_000;
// Lines kept in the wire log.
const LOG_LINES = 200;
// Mirrors of the game's rules, only to label buttons; the game decides.
const UPGRADE_BASE = { knife: 10, stove: 25, waiter: 50 };
const xpRequired = (level) => 20 * level * level;

const $ = (id) => document.getElementById(id);

let socket = null;
let passiveTimer = null;
// correlation id -> command type, so acks (which do not say) can be labelled.
const sent = new Map();

// ---- account --------------------------------------------------------------------------------

function credentials() {
  return { username: $('username').value.trim(), password: $('password').value };
}

function authMessage(text) {
  $('auth-message').textContent = text;
}

function explain(error) {
  if (error instanceof ApiError) return `${error.code ?? error.status}: ${error.message}`;
  return `the server cannot be reached (${error.message})`;
}

async function doLogin() {
  const { username, password } = credentials();
  authMessage('Logging in…');
  try {
    const pair = await login(username, password);
    log('http', 'login', null, `POST /login: player ${pair.player_id}, token for ${pair.expires_in} s`);
    start(pair, username);
  } catch (error) {
    authMessage(`Login failed: ${explain(error)}`);
  }
}

async function doRegister() {
  const { username, password } = credentials();
  const email = $('email').value.trim();
  if (!email) {
    authMessage('Registration needs an email address.');
    return;
  }
  authMessage('Registering…');
  try {
    const account = await register(username, email, password);
    log('http', 'register', null, `POST /register: player ${account.player_id}`);
  } catch (error) {
    authMessage(`Registration failed: ${explain(error)}`);
    return;
  }
  await doLogin();
}

async function doLogout() {
  // The client rotates the refresh token at each refresh: the one it holds now is the live one.
  const refreshToken = socket?.refreshToken;
  stop('Logged out.');
  try {
    await logout(refreshToken);
  } catch {
    // The page forgets the tokens either way; a refresh token left valid expires by itself.
  }
}

// ---- session ----------------------------------------------------------------------------------

function start(pair, username) {
  authMessage('');
  $('password').value = '';
  $('player').textContent = username;
  $('player').title = pair.player_id;
  $('auth').hidden = true;
  $('game').hidden = false;
  // The client keeps the token pair: it renews the session in band when the gateway says the
  // access token expires soon (gatehouse.token_expiring), and gets a new access token before
  // each reconnect, both through POST /token/refresh.
  socket = new GatehouseClient({
    token: pair.access_token,
    refreshToken: pair.refresh_token,
    onTokens: () => log('http', 'refresh', null, 'POST /token/refresh: new token pair'),
    onMessage: received,
    onStatus: statusChanged,
    onResync: resync,
  });
  socket.start();
  passiveTimer = setInterval(() => command('passive'), PASSIVE_INTERVAL_MS);
}

function stop(why) {
  clearInterval(passiveTimer);
  socket?.stop();
  socket = null;
  $('game').hidden = true;
  $('auth').hidden = false;
  authMessage(why);
  showState(null);
  status('logged-out', 'Not logged in');
}

// The state on the page may be behind the game's: the first connection, a reconnect before any
// logged update arrived, or a gap in the update log. `session` makes the game send the whole
// state again (it only loads the saved session, so it changes nothing).
function resync({ reason }) {
  log('in', 'resync', null, `re-syncing the state (${reason})`);
  command('session');
}

function status(state, text) {
  $('status').dataset.state = state;
  $('status').textContent = text;
  for (const button of document.querySelectorAll('[data-command]')) {
    button.disabled = state !== 'connected';
  }
}

function statusChanged(state, detail) {
  switch (state) {
    case 'connecting':
      status('connecting', 'Connecting…');
      break;
    case 'open':
      // Resuming, the gateway now replays what this page missed; otherwise resync() asks the
      // game for the whole state.
      status('connected', `Connected as ${detail.player_id} (${detail.connection_id})`);
      break;
    case 'stopped':
      // The refresh token was refused (expired, or its family revoked): log in again.
      if (detail?.error) stop(`Your session expired (${detail.error.message}); log in again.`);
      break;
    case 'waiting': {
      const retry = `retrying in ${(detail.delayMs / 1000).toFixed(1)} s`;
      status('waiting', `Disconnected; ${retry}`);
      log('in', 'closed', null, `${detail.code ? `close code ${detail.code}` : 'no connection'}; ${retry}`, false, 'error');
      break;
    }
    default:
      break;
  }
}

// ---- commands and updates --------------------------------------------------------------------

// Sends a command; returns its correlation id (undefined when not connected).
function command(type, payload = {}) {
  const client = socket;
  if (!client?.connected) return undefined;
  const id = client.newCorrelationId();
  client.command(type, payload, { correlationId: id }).catch((error) => {
    // The gateway's error envelopes are logged as they arrive; a command whose connection
    // closed before its ack may or may not have reached the game.
    if (!error.reply && socket === client) log('in', 'unanswered', id, `${type}: ${error.code}`, type === 'passive', 'error');
  });
  sent.set(id, type);
  // Kept after the answer (the game's update may overtake the gateway's ack), so bounded.
  if (sent.size > 500) sent.delete(sent.keys().next().value);
  log('out', type, id, JSON.stringify(payload), type === 'passive');
  return id;
}

function received(envelope) {
  const { type, payload, correlation_id: id } = envelope;
  const request = payload?.request ?? sent.get(id);
  const passive = request === 'passive';
  switch (type) {
    case 'welcome':
      log('in', type, null, `connection ${payload.connection_id}, codec ${payload.codec}`);
      break;
    case 'ack':
      log('in', type, id, `${sent.get(id) ?? ''} on the bus as ${payload.stream_id}`, passive);
      break;
    case 'game.state':
      // A passive tick must not wipe the answer to a button the player just pressed.
      if (!passive) message('');
      showState(payload.state, payload.level_check);
      log('in', type, id, `${request} → revision ${payload.state.revision}`, passive);
      break;
    case 'game.error':
      message(payload.message, 'error');
      log('in', type, id, `${request}: ${payload.code}: ${payload.message}`, false, 'error');
      break;
    case 'error':
      log('in', type, id, `${payload?.code}: ${payload?.message}`, false, 'error');
      break;
    default:
      log('in', type, id, JSON.stringify(payload));
  }
}

function showState(state, levelCheck) {
  const show = (id, value) => {
    $(id).textContent = value ?? '–';
  };
  show('coins', state?.coins);
  show('dishes', state?.dishes);
  show('level', state?.level);
  show('xp', state && `${state.xp} / ${xpRequired(state.level)}`);
  show('cook-power', state?.cook_power);
  show('sell-price', state?.sell_price);
  show('passive-rate', state?.passive_rate);
  show('revision', state?.revision);
  for (const [name, base] of Object.entries(UPGRADE_BASE)) {
    const owned = state?.upgrades?.[name] ?? 0;
    $(`buy-${name}`).textContent = `${name[0].toUpperCase()}${name.slice(1)} ×${owned} · ${base * 2 ** owned}¢`;
  }
  if (levelCheck) {
    message(levelCheck.can_level_up ? 'You can level up!' : `Level up needs ${levelCheck.xp_required} xp.`);
  }
}

function message(text, kind = '') {
  $('game-message').textContent = text;
  $('game-message').className = kind;
}

// ---- wire log ----------------------------------------------------------------------------

function log(direction, type, id, text, passive = false, kind = '') {
  const li = document.createElement('li');
  li.className = `${direction} ${kind}`;
  li.dataset.type = type;
  if (id) li.dataset.correlationId = id;
  if (passive) li.dataset.passive = 'true';
  const time = new Date().toLocaleTimeString([], { hour12: false });
  const arrow = { out: '→', in: '←', http: '⇄' }[direction];
  li.textContent = `${time} ${arrow} ${type}${id ? ` [${id}]` : ''} ${text}`;
  const list = $('log');
  list.prepend(li);
  while (list.children.length > LOG_LINES) list.lastElementChild.remove();
}

// ---- wiring --------------------------------------------------------------------------------

$('auth-form').addEventListener('submit', (event) => {
  event.preventDefault();
  doLogin();
});
$('register').addEventListener('click', () => {
  if ($('auth-form').reportValidity()) doRegister();
});
$('logout').addEventListener('click', doLogout);
$('show-passive').addEventListener('change', (event) => {
  $('log').classList.toggle('show-passive', event.target.checked);
});
for (const button of document.querySelectorAll('[data-command]')) {
  button.addEventListener('click', () => {
    const upgrade = button.dataset.upgrade;
    command(button.dataset.command, upgrade ? { upgrade } : {});
  });
}
showState(null);
status('logged-out', 'Not logged in');

// A handle for the browser's developer console (and the end-to-end test): send any command, or
// drop the connection to watch the client reconnect; `client` is the GatehouseClient.
window.clickAndCook = {
  command,
  dropConnection: () => socket?.drop(),
  get client() {
    return socket;
  },
};
