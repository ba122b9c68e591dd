// Requests to this server's /v1 API: same origin only, an API key (kept in sessionStorage) as
// Bearer when the user gave one, problem+json errors turned into ApiError.

const KEY = "secevents.apiKey";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

let authNeeded = () => {};

export const apiKey = () => sessionStorage.getItem(KEY);
export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}
export function onAuthNeeded(callback) {
  authNeeded = callback;
}

/** `params` values may be arrays (repeated parameters mean OR) and empty values are left out. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== null && v !== undefined && v !== "") search.append(name, String(v));
    }
  }
  return search.toString();
}

export async function get(path, params = {}, { signal } = {}) {
  const qs = query(params);
  const headers = { Accept: "application/json" };
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  const response = await fetch(qs ? `${path}?${qs}` : path, { headers, signal, credentials: "omit" });
  if (!response.ok) {
    let problem = null;
    try {
      problem = await response.json();
    } catch {
      // not a problem document: the status says enough
    }
    if (response.status === 401 || response.status === 403) authNeeded(response.status, problem);
    throw new ApiError(response.status, problem);
  }
  return response.json();
}

/** One promise per URL for records that do not change while the page is open (sources,
 * organisations): a record panel that cites one source ten times fetches it once. */
const cache = new Map();
export function cached(path) {
  if (!cache.has(path)) {
    const promise = get(path);
    promise.catch(() => cache.delete(path));
    cache.set(path, promise);
  }
  return cache.get(path);
}
export const clearCache = () => cache.clear();

export const isAbort = (error) => error?.name === "AbortError";

let errorHandler = () => {};
export function onError(callback) {
  errorHandler = callback;
}
/** Show a failed request to the user (an aborted one was replaced by a newer request). */
export function report(error) {
  if (!isAbort(error)) errorHandler(error);
}
