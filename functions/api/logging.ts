import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import type { Principal } from './env.js';
import type { AppEnv, Scope } from './env.js';

/** Receives one structured line per request. Must not throw; if it does, the response is unaffected. */
export type ApiLogger = (line: Record<string, unknown>) => void;

/** The default: one JSON object per line on stdout, which every log shipper (and CloudWatch) reads. */
export const jsonLineLogger: ApiLogger = (line) => {
  process.stdout.write(`${JSON.stringify(line)}\n`);
};

const MAX_LOGGED_PATH = 512;

/**
 * Logs every request once it has been answered: method, path, the route that served it, status,
 * latency, caller, tier and tenant or domain. The query string is left out (filters may hold
 * personal data). A 500 also carries its cause, with every config secret masked by `mask`, under
 * the request id that the response gives the client as `correlationId`.
 */
export function requestLog(logger: ApiLogger, mask: (text: string) => string): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = performance.now();
    try {
      await next();
    } finally {
      const status = c.res.status;
      const principal = c.var.principal as Principal | undefined;
      const scope = c.var.scope as Scope | undefined;
      const line: Record<string, unknown> = {
        time: new Date().toISOString(),
        level: status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info',
        msg: 'request',
        requestId: c.var.requestId,
        method: c.req.method,
        path: c.req.path.slice(0, MAX_LOGGED_PATH),
        route: routePath(c, c.req.routeIndex),
        status,
        latencyMs: Math.round((performance.now() - started) * 1000) / 1000,
        ...(principal ? { principal: principal.id } : {}),
        ...(scope ? scopeFields(scope) : {}),
      };
      if (status >= 500 && c.error) line.error = describe(c.error, mask);
      // Stored data failed its tamper check: an incident for whoever watches the logs, not a
      // failure to retry. Alerting rules match on `alert`.
      if (c.error && (c.error as { code?: unknown }).code === 'TAMPER_DETECTED') {
        const e = c.error as { collection?: unknown; id?: unknown; ov?: unknown };
        Object.assign(line, { level: 'fatal', alert: 'tamper', tamper: { collection: e.collection, id: e.id, ov: e.ov } });
      }
      try {
        logger(line);
      } catch {
        // A failing log sink must not turn a served request into a failed one.
      }
    }
  };
}

function scopeFields(scope: Scope): Record<string, string> {
  return scope.tier === 'tenant' ? { tier: scope.tier, tenant: scope.tenantId } : scope.tier === 'domain' ? { tier: scope.tier, domain: scope.domain } : { tier: scope.tier };
}

/** Causes are followed a few levels deep: enough for driver errors, bounded against cycles. */
const MAX_CAUSES = 3;

function describe(err: unknown, mask: (text: string) => string, depth = 0): Record<string, unknown> {
  if (!(err instanceof Error)) return { message: mask(String(err)) };
  return {
    name: err.name,
    ...('code' in err && typeof err.code === 'string' ? { code: err.code } : {}),
    message: mask(err.message),
    ...(err.stack ? { stack: mask(err.stack) } : {}),
    ...(err.cause !== undefined && depth < MAX_CAUSES ? { cause: describe(err.cause, mask, depth + 1) } : {}),
  };
}
