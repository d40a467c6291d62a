// The collector's gRPC services, read through gRPC-web on the same port
// that served this page. With tokens configured the collector asks for a
// read token; the page asks the user once and sends it as bearer metadata.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AlertService, AvailabilityService, BoardService, CapacityService, IncidentService, QueryService } from "./gen/nightjar/v1/nightjar_pb";

const TOKEN_KEY = "nightjar.token";

function storedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY) ?? localStorage.getItem(TOKEN_KEY);
}

export function setToken(token: string, remember: boolean) {
  sessionStorage.setItem(TOKEN_KEY, token);
  if (remember) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

const bearer: Interceptor = (next) => async (req) => {
  const token = storedToken();
  if (token) req.header.set("authorization", `Bearer ${token}`);
  return next(req);
};

const transport = createGrpcWebTransport({
  baseUrl: location.origin,
  interceptors: [bearer],
});

export const query = createClient(QueryService, transport);
export const alerts = createClient(AlertService, transport);
export const board = createClient(BoardService, transport);
export const availability = createClient(AvailabilityService, transport);
export const incidents = createClient(IncidentService, transport);
export const capacity = createClient(CapacityService, transport);

/** Whether `e` means "a token is needed (or this one is refused)". */
export function needsToken(e: unknown): boolean {
  const c = ConnectError.from(e).code;
  return c === Code.Unauthenticated || c === Code.PermissionDenied;
}

/** A message for the page: the collector's own words. */
export function describe(e: unknown): string {
  const err = ConnectError.from(e);
  return `${Code[err.code] ?? err.code}: ${err.rawMessage}`;
}

/** Listeners of the stream indicator in the header. */
type LiveListener = (live: boolean) => void;
const liveListeners: LiveListener[] = [];
export function onLive(f: LiveListener) {
  liveListeners.push(f);
}

/**
 * Follows a server stream until `signal` aborts: each message to `each`;
 * on an error waits (1 s, doubling to 15 s) and opens it again, calling
 * `reopened` first so the page can fetch what it missed.
 */
export async function follow<T>(
  open: (signal: AbortSignal) => AsyncIterable<T>,
  each: (m: T) => void,
  signal: AbortSignal,
  reopened: () => Promise<void> = async () => {},
) {
  let delay = 1000;
  let first = true;
  while (!signal.aborted) {
    try {
      if (!first) await reopened();
      first = false;
      for await (const m of open(signal)) {
        delay = 1000;
        liveListeners.forEach((f) => f(true));
        each(m);
      }
    } catch (e) {
      if (signal.aborted) return;
      if (needsToken(e)) throw e;
      console.warn(`stream ended: ${describe(e)}; reconnecting`);
    }
    liveListeners.forEach((f) => f(false));
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 15000);
  }
}
