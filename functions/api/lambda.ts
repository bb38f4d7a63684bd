/**
 * The API's Lambda entry point (`functions.api.handler` in serverless.yml): API Gateway HTTP API
 * events (payload format 2.0) go through `hono/aws-lambda` to the app of `app.ts`.
 *
 * The config, the engine (with its MongoDB client or SQLite file, and its S3 clients) and the app
 * are built on the first invocation of a container and reused by every warm one (`container`;
 * `container.stats` counts what was constructed). A failed build is answered with a 500 problem
 * and tried again on the next invocation.
 *
 * Before it returns, each invocation waits for the blob sync of its writes (`xronox.flush()`):
 * Lambda freezes the container as soon as the handler returns, and work left in flight would
 * stall, possibly for good if the container is never thawed. The index already holds every
 * acknowledged write and its pending-sync mark, so nothing is lost either way; flushing only
 * keeps S3 up to date without waiting for a repair run. The wait ends 2 s before the function's
 * deadline at the latest: a write the index has committed must not be answered with a timeout
 * (which a client would retry); what is not synced by then stays in the outbox.
 */
import { randomUUID } from 'node:crypto';
import type { Context as HonoContext } from 'hono';
import { handle, type LambdaContext, type LambdaEvent } from 'hono/aws-lambda';
import { maskSecretsIn, type XronoxConfig } from '../../core/index.js';
import { backgroundErrorLogger, createTelemetry, errorFields, METRIC, MetricUnit, requestObserver } from '../observability/telemetry.js';
import { createApp } from './app.js';
import { createContainer } from './container.js';
import { corsSettings } from './cors.js';
import { PROBLEM_CONTENT_TYPE, toProblem } from './problem.js';

/** This process's logger, metrics and (with `XRONOX_TRACING`) tracer: see docs/observability.md. */
export const telemetry = createTelemetry({ metrics: true });

/** The config of the current build, for masking its secrets in background error lines. */
let currentConfig: XronoxConfig | undefined;
const mask = () => {
  const config = currentConfig;
  return config ? (text: string) => maskSecretsIn(text, config) : (text: string) => text;
};

/** This container's config, engine and app; `container.stats` shows what was constructed. */
export const container = createContainer({
  buildApp: ({ xronox, config }) => {
    currentConfig = config;
    // CORS: the config's `api.cors`, or `XRONOX_CORS_ORIGINS` (the origins serverless.yml also gives the HTTP API).
    return createApp({ xronox, logger: requestObserver(telemetry), requestIdOf: awsRequestIdOf, cors: corsSettings(xronox.config.api?.cors) });
  },
  onBackgroundError: backgroundErrorLogger(telemetry, mask),
});

/** The invocation's `awsRequestId` (hono/aws-lambda hands the Lambda context to the app as `env.lambdaContext`), else a UUID. */
function awsRequestIdOf(c: HonoContext): string {
  const env = c.env as { lambdaContext?: { awsRequestId?: unknown } } | undefined;
  const id = env?.lambdaContext?.awsRequestId;
  return typeof id === 'string' && id !== '' ? id : randomUUID();
}

type LambdaHandler = ReturnType<typeof handle>;
const handlers = new WeakMap<object, LambdaHandler>();

export async function handler(event: LambdaEvent, context?: LambdaContext): Promise<Awaited<ReturnType<LambdaHandler>>> {
  const apiGatewayRequestId = (event as { requestContext?: { requestId?: unknown } } | undefined)?.requestContext?.requestId;
  return telemetry.invoke('api', context, typeof apiGatewayRequestId === 'string' ? { apiGatewayRequestId } : {}, async () => {
    let built;
    try {
      built = await container.get();
    } catch (err) {
      return initFailure(err, context);
    }
    let serve = handlers.get(built.app);
    if (!serve) {
      serve = handle(built.app);
      handlers.set(built.app, serve);
    }
    try {
      return await serve(event, context);
    } finally {
      await flushWithin(built.xronox, context);
    }
  });
}

/** Time kept back from the deadline for the response to leave the function. */
const DEADLINE_MARGIN_MS = 2000;

async function flushWithin(xronox: { flush(): Promise<{ failed: number }> }, context: LambdaContext | undefined): Promise<void> {
  const budget = context?.getRemainingTimeInMillis ? context.getRemainingTimeInMillis() - DEADLINE_MARGIN_MS : undefined;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<'expired'>((resolve) => {
    if (budget !== undefined) timer = setTimeout(() => resolve('expired'), Math.max(0, budget));
  });
  try {
    const outcome = await Promise.race([xronox.flush(), expired]);
    if (outcome === 'expired') {
      telemetry.logger.warn('blob sync still running at the deadline; answering now, the rest stays in the outbox', { correlationId: context?.awsRequestId });
    } else {
      telemetry.metrics?.addMetric(METRIC.blobSyncFailures, MetricUnit.Count, outcome.failed);
    }
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A 500 problem for an invocation that found no working container (the config could not be
 * loaded, or the app not built). The cause goes to the log under the correlation id; config
 * errors never quote secrets, so their message can be logged as it is.
 */
function initFailure(err: unknown, context: LambdaContext | undefined): Awaited<ReturnType<LambdaHandler>> {
  const correlationId = context?.awsRequestId ?? randomUUID();
  const { problem } = toProblem(err, correlationId);
  telemetry.logger.error('the API could not start; the next invocation tries again', { correlationId, error: errorFields(err, (text) => text) });
  telemetry.metrics?.addDimensions({ route: 'none', statusClass: '5xx' });
  telemetry.metrics?.addDimensions({});
  telemetry.metrics?.addMetric(METRIC.requests, MetricUnit.Count, 1);
  telemetry.metrics?.addMetric(METRIC.errors, MetricUnit.Count, 1);
  return { statusCode: problem.status, headers: { 'content-type': PROBLEM_CONTENT_TYPE }, body: JSON.stringify(problem), isBase64Encoded: false };
}
