/**
 * API Gateway HTTP API events, payload format 2.0, as API Gateway sends them to a Lambda proxy
 * integration (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html):
 * header names lowercase, repeated headers and query values joined with commas, cookies moved to
 * `cookies`, `queryStringParameters`/`pathParameters`/`body` present only when there are some,
 * the `$default` stage (no stage prefix in `rawPath`), and the route key of the serverless.yml
 * route that matched (`ANY /`, `ANY /{proxy+}`, `GET /openapi.json`, `GET /docs`).
 */
import { randomUUID } from 'node:crypto';

export interface HttpApiEventV2 {
  version: '2.0';
  routeKey: string;
  rawPath: string;
  rawQueryString: string;
  cookies?: string[];
  headers: Record<string, string>;
  queryStringParameters?: Record<string, string>;
  pathParameters?: Record<string, string>;
  requestContext: {
    accountId: string;
    apiId: string;
    domainName: string;
    domainPrefix: string;
    http: { method: string; path: string; protocol: string; sourceIp: string; userAgent: string };
    requestId: string;
    routeKey: string;
    stage: string;
    time: string;
    timeEpoch: number;
  };
  body?: string;
  isBase64Encoded: boolean;
}

export interface RequestSpec {
  method: string;
  /** Path and query as a client sends them, e.g. `/v1/tenants/acme/runtime/orders?limit=5`. */
  url: string;
  /** Any case; repeated names are given as arrays. */
  headers?: Record<string, string | string[]>;
  /** JSON-serialised (and `content-type: application/json` set) unless a string. */
  body?: unknown;
}

const API_ID = 'a1b2c3d4e5';
const REGION = 'eu-west-1';
const ACCOUNT = '123456789012';
const SOURCE_IP = '203.0.113.7';
const USER_AGENT = 'xronox-tests/1.0';

/** The route of serverless.yml's `api` function that API Gateway would match for this request. */
export function routeKeyFor(method: string, path: string): string {
  if (method === 'GET' && (path === '/openapi.json' || path === '/docs')) return `GET ${path}`;
  return path === '/' ? 'ANY /' : 'ANY /{proxy+}';
}

export function httpApiEvent(spec: RequestSpec): HttpApiEventV2 {
  const method = spec.method.toUpperCase();
  const queryAt = spec.url.indexOf('?');
  const rawPath = queryAt === -1 ? spec.url : spec.url.slice(0, queryAt);
  const rawQueryString = queryAt === -1 ? '' : spec.url.slice(queryAt + 1);
  const body = spec.body === undefined ? undefined : typeof spec.body === 'string' ? spec.body : JSON.stringify(spec.body);

  const given = new Map<string, string[]>();
  const add = (name: string, value: string) => given.set(name.toLowerCase(), [...(given.get(name.toLowerCase()) ?? []), value]);
  if (spec.body !== undefined && typeof spec.body !== 'string') add('content-type', 'application/json');
  for (const [name, value] of Object.entries(spec.headers ?? {})) for (const v of Array.isArray(value) ? value : [value]) add(name, v);
  const cookies = given.get('cookie')?.flatMap((c) => c.split(/;\s*/)).filter((c) => c !== '');
  given.delete('cookie');

  const now = new Date();
  const traceEpoch = Math.floor(now.getTime() / 1000).toString(16);
  const headers: Record<string, string> = {
    accept: '*/*',
    host: `${API_ID}.execute-api.${REGION}.amazonaws.com`,
    'user-agent': USER_AGENT,
    'x-amzn-trace-id': `Root=1-${traceEpoch}-${randomUUID().replaceAll('-', '').slice(0, 24)}`,
    'x-forwarded-for': SOURCE_IP,
    'x-forwarded-port': '443',
    'x-forwarded-proto': 'https',
    ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}),
  };
  for (const [name, values] of given) headers[name] = values.join(',');

  const query = new Map<string, string[]>();
  for (const [key, value] of new URLSearchParams(rawQueryString)) query.set(key, [...(query.get(key) ?? []), value]);

  const routeKey = routeKeyFor(method, rawPath);
  const event: HttpApiEventV2 = {
    version: '2.0',
    routeKey,
    rawPath,
    rawQueryString,
    headers,
    requestContext: {
      accountId: ACCOUNT,
      apiId: API_ID,
      domainName: `${API_ID}.execute-api.${REGION}.amazonaws.com`,
      domainPrefix: API_ID,
      http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: SOURCE_IP, userAgent: headers['user-agent'] ?? USER_AGENT },
      requestId: `${randomUUID().slice(0, 8)}=`,
      routeKey,
      stage: '$default',
      time: apiGatewayTime(now),
      timeEpoch: now.getTime(),
    },
    isBase64Encoded: false,
  };
  if (cookies?.length) event.cookies = cookies;
  if (query.size > 0) event.queryStringParameters = Object.fromEntries([...query].map(([k, v]) => [k, v.join(',')]));
  if (routeKey === 'ANY /{proxy+}') event.pathParameters = { proxy: decodeURIComponent(rawPath.slice(1)) };
  if (body !== undefined) event.body = body;
  return event;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** `22/Nov/2026:02:56:13 +0000`, the format of `requestContext.time`. */
function apiGatewayTime(d: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`;
}

/** A Lambda context as the runtime hands it to the API function, `awsRequestId` made unique per call. */
export function lambdaContext(awsRequestId: string) {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: 'xronox-test-api',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:xronox-test-api',
    memoryLimitInMB: '512',
    awsRequestId,
    logGroupName: '/aws/lambda/xronox-test-api',
    logStreamName: '2026/11/22/[$LATEST]0123456789abcdef',
    getRemainingTimeInMillis: () => 29_000,
  };
}
