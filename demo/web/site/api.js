// The gateway's account API (docs/protocol.md section 2), same origin as the page.

/** A refused request: `status` is the HTTP status, `code` the problem's machine-readable code. */
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

// POST a JSON body; resolves with the parsed answer (null for 204), rejects with ApiError
// for an HTTP error, or with the fetch's TypeError when the server cannot be reached.
async function post(path, body) {
  const response = await fetch(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, data?.code, data?.detail || data?.title);
  }
  return data;
}

/** 201 {player_id, username}; 409 username_taken / email_taken; 400 invalid_request. */
export function register(username, email, password) {
  return post('/register', { username, email, password });
}

/** 200 {access_token, refresh_token, expires_in, player_id}; 401 invalid_credentials. */
export function login(username, password) {
  return post('/login', { username, password });
}

/** Revokes the refresh token's family. */
export function logout(refreshToken) {
  return post('/logout', { refresh_token: refreshToken });
}
