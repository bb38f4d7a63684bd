/**
 * Logs, metrics and traces of the Lambda functions (and the log lines of `npm start`), with
 * Powertools for AWS Lambda (TypeScript): its Logger (JSON lines with the Lambda context and the
 * cold start), its Metrics (CloudWatch embedded metric format, EMF: metrics are log lines that
 * CloudWatch turns into metrics, with no API call and no agent) and, when `XRONOX_TRACING` is on,
 * its Tracer (X-Ray). Why Powertools and the log shape: docs/observability.md.
 *
 * The core knows nothing of this: it reports background failures through `onBackgroundError`,
 * which `backgroundErrorLogger` turns into log lines here.
 */
import type { Context } from 'aws-lambda';
import { LogFormatter, LogItem, Logger } from '@aws-lambda-powertools/logger';
import type { LogAttributes, UnformattedAttributes } from '@aws-lambda-powertools/logger/types';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Tracer } from '@aws-lambda-powertools/tracer';
import type { BackgroundErrorHandler } from '../../core/index.js';

/** Names the service in every log line and the `service` dimension of every metric (Powertools' own variable). */
export const SERVICE_NAME_VARIABLE = 'POWERTOOLS_SERVICE_NAME';
/** The CloudWatch namespace of the metrics (Powertools' own variable). */
export const METRICS_NAMESPACE_VARIABLE = 'POWERTOOLS_METRICS_NAMESPACE';
/** `true` (or `1`): trace each invocation with X-Ray. Default off (the function also needs `tracing: lambda: true`). */
export const TRACING_VARIABLE = 'XRONOX_TRACING';

export const DEFAULT_SERVICE_NAME = 'xronox';
export const DEFAULT_METRICS_NAMESPACE = 'Xronox';

/** The metric names, one place: docs/observability.md lists them with their dimensions. */
export const METRIC = {
  /** Every answered request; dimensions `route`, `statusClass` (and `service` alone). */
  requests: 'Requests',
  /** Requests answered with a 5xx. */
  errors: 'Errors',
  /** Requests refused for a concurrent write: 409 (conflict) and 412 (`If-Match` not current). */
  writeConflicts: 'WriteConflicts',
  /** Time from the request's arrival at the app to its answer. */
  latency: 'Latency',
  /** Records whose blob sync failed during an invocation (they stay in the outbox and are retried). */
  blobSyncFailures: 'BlobSyncFailures',
  /** Records in the outbox (waiting for blob sync) after the archive sweep's repair pass, over every database. */
  blobSyncBacklog: 'BlobSyncBacklog',
  /** Background failures reported to `onBackgroundError`. */
  backgroundErrors: 'BackgroundErrors',
  /** Job invocations; dimensions `job`, `outcome` (`succeeded`, `incomplete`, `failed`). */
  jobRuns: 'JobRuns',
  /** How long a job run took. Dimension `job`. */
  jobDuration: 'JobDuration',
} as const;

export interface TelemetrySettings {
  serviceName: string;
  namespace: string;
  tracing: boolean;
}

/** The settings the environment names (empty values count as unset). */
export function telemetrySettings(env: NodeJS.ProcessEnv = process.env): TelemetrySettings {
  const tracing = (env[TRACING_VARIABLE] ?? '').trim().toLowerCase();
  return {
    serviceName: env[SERVICE_NAME_VARIABLE]?.trim() || DEFAULT_SERVICE_NAME,
    namespace: env[METRICS_NAMESPACE_VARIABLE]?.trim() || DEFAULT_METRICS_NAMESPACE,
    tracing: tracing === 'true' || tracing === '1',
  };
}

/**
 * Powertools' record, in the shape of Xronox's other log lines (`time`, `level`, `msg`, then the
 * fields), with the Lambda fields camel-cased like the request line's own: `coldStart`,
 * `awsRequestId`, `functionName`, `xrayTraceId`. Fields that are unknown (no Lambda context
 * outside Lambda, no trace id without X-Ray) are left out.
 */
class XronoxLogFormatter extends LogFormatter {
  override formatAttributes(attributes: UnformattedAttributes, additional: LogAttributes): LogItem {
    const lambda = attributes.lambdaContext;
    return new LogItem({
      attributes: {
        time: this.formatTimestamp(attributes.timestamp),
        level: attributes.logLevel.toLowerCase(),
        msg: attributes.message,
        service: attributes.serviceName,
        coldStart: lambda?.coldStart,
        awsRequestId: lambda?.awsRequestId,
        functionName: lambda?.functionName,
        xrayTraceId: attributes.xRayTraceId,
      },
    }).addAttributes(additional);
  }
}

/** The fields of a Lambda context that the logger and metrics read (hono's `LambdaContext` and aws-lambda's `Context` both have them). */
export type InvocationContext = Pick<Context, 'awsRequestId' | 'functionName' | 'functionVersion' | 'invokedFunctionArn' | 'memoryLimitInMB'>;

/** What an invocation adds to every log line besides the Lambda context. */
export interface InvocationKeys {
  /** API Gateway's id of the request (`requestContext.requestId`), in its access log too. */
  apiGatewayRequestId?: string;
  /** The job a background function runs. */
  job?: string;
}

export interface Telemetry {
  readonly settings: TelemetrySettings;
  readonly logger: Logger;
  /** `undefined` when metrics are off (`npm start`: EMF lines mean something only to CloudWatch). */
  readonly metrics: Metrics | undefined;
  /**
   * Runs one invocation: its Lambda context (request id, cold start) and `keys` on every log line
   * it writes, inside an X-Ray subsegment when tracing is on; afterwards the metrics it stored are
   * published (one EMF line) and its keys dropped, whether it returned or threw.
   */
  invoke<T>(name: string, context: InvocationContext | undefined, keys: InvocationKeys, run: () => Promise<T>): Promise<T>;
  /** Whether the tracer module has been loaded (only when tracing is on). */
  readonly tracerLoaded: boolean;
}

/**
 * The logger, metrics and (when on) tracer of one process. Created once per module, at import
 * (the Lambda init phase): the tracer's module and the X-Ray SDK are imported then only when
 * tracing is on, so a function without tracing pays nothing for them.
 */
export function createTelemetry(options: { env?: NodeJS.ProcessEnv; metrics: boolean }): Telemetry {
  const settings = telemetrySettings(options.env);
  const logger = new Logger({ serviceName: settings.serviceName, logFormatter: new XronoxLogFormatter() });
  const metrics = options.metrics ? new Metrics({ namespace: settings.namespace, serviceName: settings.serviceName, logger }) : undefined;
  let tracerLoaded = false;
  const tracer: Promise<Tracer | undefined> = settings.tracing
    ? import('@aws-lambda-powertools/tracer').then(
        ({ Tracer: Loaded }) => {
          tracerLoaded = true;
          return new Loaded({ serviceName: settings.serviceName });
        },
        (err: unknown) => {
          logger.error('the X-Ray tracer could not be loaded; invocations run untraced', { error: errorFields(err, (t) => t) });
          return undefined;
        },
      )
    : Promise.resolve(undefined);

  const traced = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
    const loaded = await tracer;
    const parent = loaded?.isTracingEnabled() ? loaded.getSegment() : undefined;
    if (!loaded || !parent) return run();
    const segment = parent.addNewSubsegment(`## ${name}`);
    loaded.setSegment(segment);
    loaded.annotateColdStart();
    loaded.addServiceNameAnnotation();
    try {
      // The result is not added as metadata: it holds tenants' data. Nor is an error's message,
      // which may hold a config secret: the segment is flagged, and the masked error is in the
      // log line that carries the same trace id.
      return await run();
    } catch (err) {
      segment.addErrorFlag();
      throw err;
    } finally {
      segment.close();
      loaded.setSegment(parent);
    }
  };

  return {
    settings,
    logger,
    metrics,
    get tracerLoaded() {
      return tracerLoaded;
    },
    async invoke(name, context, keys, run) {
      // addContext reads only the fields of InvocationContext.
      if (context) logger.addContext(context as Context);
      logger.appendKeys({ ...keys });
      if (context) metrics?.captureColdStartMetric(context.functionName);
      try {
        return await traced(name, run);
      } finally {
        if (metrics?.hasStoredMetrics()) metrics.publishStoredMetrics();
        logger.resetKeys();
      }
    },
  };
}

/** A request line as `functions/api/logging.ts` makes it. */
type RequestLine = Record<string, unknown> & { level?: unknown; msg?: unknown; status?: unknown; route?: unknown; latencyMs?: unknown };

const LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/**
 * The app's request logger (`createApp({ logger })`) over Powertools: each request line goes out
 * through the Logger (so it carries the AWS request ids and the cold start), and, with metrics,
 * counts the request by route and status class.
 */
export function requestObserver(telemetry: Telemetry): (line: Record<string, unknown>) => void {
  const { logger, metrics } = telemetry;
  return (line: RequestLine) => {
    // The logger writes its own time, level and message.
    const { level, msg, ...fields } = line;
    delete fields.time;
    const method = LEVELS.find((l) => l === level) ?? 'info';
    logger[method](typeof msg === 'string' ? msg : 'request', fields);
    if (!metrics || typeof line.status !== 'number') return;
    const status = line.status;
    // Route patterns (`/v1/tenants/:tenantId/...`), never paths: a bounded set of dimension values.
    metrics.addDimensions({ route: typeof line.route === 'string' && line.route !== '' ? line.route : 'none', statusClass: `${Math.floor(status / 100)}xx` });
    // And the same metrics under `service` alone, for alarms over every route.
    metrics.addDimensions({});
    metrics.addMetric(METRIC.requests, MetricUnit.Count, 1);
    metrics.addMetric(METRIC.errors, MetricUnit.Count, status >= 500 ? 1 : 0);
    metrics.addMetric(METRIC.writeConflicts, MetricUnit.Count, status === 409 || status === 412 ? 1 : 0);
    if (typeof line.latencyMs === 'number') metrics.addMetric(METRIC.latency, MetricUnit.Milliseconds, line.latencyMs);
  };
}

/**
 * `onBackgroundError` for the engine: one structured error line per failure (its operation,
 * database, tenant and record where known; the error's name, code and message with config secrets
 * masked by `mask`), counted as `BackgroundErrors` with metrics on.
 */
export function backgroundErrorLogger(telemetry: Telemetry, mask: () => (text: string) => string): BackgroundErrorHandler {
  return (err, context) => {
    telemetry.logger.error(`xronox background ${context.operation} failed; it is retried`, { ...context, error: errorFields(err, mask()) });
    // Its own EMF line: a failure between two requests has no route.
    const single = telemetry.metrics?.singleMetric();
    single?.addMetric(METRIC.backgroundErrors, MetricUnit.Count, 1);
  };
}

/** A single metric published at once, with the `service` dimension only. */
export function publishGauge(telemetry: Telemetry, name: string, unit: (typeof MetricUnit)[keyof typeof MetricUnit], value: number, dimensions: Record<string, string> = {}): void {
  const single = telemetry.metrics?.singleMetric();
  if (!single) return;
  if (Object.keys(dimensions).length > 0) single.addDimensions(dimensions);
  single.addMetric(name, unit, value);
}

/** An error as log fields: name, code, message (masked), its cause one level down. No stack: background errors are the store's, not the code's. */
export function errorFields(err: unknown, mask: (text: string) => string): Record<string, unknown> {
  if (!(err instanceof Error)) return { message: mask(String(err)) };
  return {
    name: err.name,
    ...('code' in err && typeof err.code === 'string' ? { code: err.code } : {}),
    message: mask(err.message),
    ...(err.cause instanceof Error ? { cause: { name: err.cause.name, message: mask(err.cause.message) } } : {}),
  };
}

export { MetricUnit };
