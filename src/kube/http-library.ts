// The transport under client-node's typed clients: undici's `request` instead of client-node's default,
// undici's `fetch`. fetch implements the browser's semantics (WHATWG streams for every body, Headers
// objects, a dependent AbortSignal per request): in the 10,000-pod cold start's CPU profile the fetch
// layer alone was ~10% of the operator's main thread, its streams and abort plumbing another ~5%, for
// requests whose bodies are a few KB of JSON. Same dispatcher (TLS and the kubeconfig's credentials),
// headers, body and signal; the answer is read whole before it is returned, so no connection is ever
// left waiting on a body nobody reads.
import { ResponseContext, SelfDecodingBody, wrapHttpLibrary } from '@kubernetes/client-node';
import type { HttpLibrary, RequestContext } from '@kubernetes/client-node';
import { request } from 'undici';

async function send(ctx: RequestContext): Promise<ResponseContext> {
  const body = ctx.getBody();
  // Every call the operator makes sends JSON text; a form body would need fetch's encoding.
  if (body !== undefined && typeof body !== 'string') throw new Error(`${ctx.getHttpMethod()} ${ctx.getUrl()}: only text request bodies are supported`);
  const signal = ctx.getSignal();
  const dispatcher = ctx.getDispatcher();
  const response = await request(ctx.getUrl(), {
    method: ctx.getHttpMethod(),
    headers: ctx.getHeaders(),
    ...(body === undefined ? {} : { body }),
    ...(signal === undefined ? {} : { signal }),
    ...(dispatcher === undefined ? {} : { dispatcher }),
  });
  const bytes = Buffer.from(await response.body.arrayBuffer());
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return new ResponseContext(response.statusCode, headers, new SelfDecodingBody(Promise.resolve(bytes)));
}

/** client-node's HttpLibrary over undici's `request`; pass it as `httpApi` to createConfiguration. */
export function undiciHttpLibrary(): HttpLibrary {
  return wrapHttpLibrary({ send });
}
