import { HTTPException } from 'hono/http-exception';
import type { ZodError } from 'zod';
import { ValidationError, VersionConflictError, XronoxError, type ErrorCode } from '../../core/index.js';

/**
 * Errors as RFC 9457 problem details. Every failure the API reports goes through `toProblem`, so
 * what a client sees is decided here: statuses come from one table, and only messages the engine
 * writes for the caller (validation, not found, conflicts) are shown. Anything unexpected is a
 * 500 that says nothing but its correlation id; the cause goes to the log.
 */

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export interface ProblemIssue {
  /** Where the problem is: `path.id`, `query.limit`, `header.if-match`, `body.items[2]`… */
  path: string;
  message: string;
}

/** The body of every error response. `type` is `about:blank`: the status and `code` say it all. */
export interface Problem {
  type: 'about:blank';
  title: string;
  status: number;
  detail: string;
  /** A stable code to switch on: an engine `ErrorCode`, or one of the API's own (`UNAUTHORIZED`…). */
  code: string;
  errors?: ProblemIssue[];
  /** 412: the record's current ov, to retry with. */
  currentOv?: number | null;
  /** 500: the id of the log line that holds the cause. Same as the `X-Request-Id` header. */
  correlationId?: string;
}

/**
 * The one table from engine error codes to HTTP statuses. `expose` says whether the engine's
 * message may be shown: it may when it only describes the caller's own input; it may not when it
 * could name other tenants or databases (route and access errors) or comes from a driver.
 */
const XRONOX_STATUS: Record<ErrorCode, { status: number; expose: boolean }> = {
  VALIDATION_FAILED: { status: 400, expose: true },
  TENANT_ACCESS_DENIED: { status: 403, expose: false },
  NOT_FOUND: { status: 404, expose: true },
  ROUTE_NOT_FOUND: { status: 404, expose: false },
  CONFLICT: { status: 409, expose: true },
  VERSION_CONFLICT: { status: 412, expose: true },
  CONFIG_INVALID: { status: 500, expose: false },
  STORAGE_FAILED: { status: 500, expose: false },
  CLOSED: { status: 500, expose: false },
  TAMPER_DETECTED: { status: 500, expose: false },
  XRONOX_ERROR: { status: 500, expose: false },
};

/** What unexposed messages are replaced with, by status. */
const GENERIC_DETAIL: Record<number, string> = {
  403: 'This credential does not grant access to what was asked',
  404: 'No database is configured for this tier, database type and collection',
  500: 'An unexpected error occurred; quote the correlation id when reporting it',
};

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  412: 'Precondition Failed',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  428: 'Precondition Required',
  500: 'Internal Server Error',
};

/** A failure the HTTP layer itself decides (authentication, media type, preconditions, bad input). */
export class HttpProblem extends Error {
  readonly status: number;
  readonly code: string;
  readonly errors: ProblemIssue[] | undefined;
  readonly headers: Record<string, string>;

  constructor(status: number, code: string, detail: string, options: { errors?: ProblemIssue[]; headers?: Record<string, string> } = {}) {
    super(detail);
    this.name = 'HttpProblem';
    this.status = status;
    this.code = code;
    this.errors = options.errors;
    this.headers = options.headers ?? {};
  }
}

/** Where zod found a problem, as clients know it. */
const TARGET_LABEL: Record<string, string> = { param: 'path', query: 'query', json: 'body', header: 'header', form: 'body', cookie: 'cookie' };
const MAX_ISSUES = 20;

/** A 400 listing what zod found wrong with one part of the request. */
export function invalidRequest(target: string, error: ZodError): HttpProblem {
  const label = TARGET_LABEL[target] ?? target;
  // An unknown key is named in the path itself (`query.limt`), one issue each, so a client sees which.
  const errors = error.issues
    .flatMap((issue) =>
      issue.code === 'unrecognized_keys'
        ? issue.keys.map((key) => ({ path: formatPath(label, [...issue.path, key]), message: `is not a known ${label === 'query' ? 'query parameter' : 'key'} here` }))
        : [{ path: formatPath(label, issue.path), message: issue.message }],
    )
    .slice(0, MAX_ISSUES);
  const part = label === 'body' ? 'body is' : label === 'header' ? 'headers are' : `${label} parameters are`;
  return new HttpProblem(400, 'VALIDATION_FAILED', `The request ${part} not valid`, { errors });
}

/** The problem (and extra headers) for any thrown value; `status` 500 means it must be logged. */
export function toProblem(err: unknown, correlationId: string): { problem: Problem; headers: Record<string, string> } {
  if (err instanceof HttpProblem) {
    return {
      problem: { ...base(err.status, err.code, err.message), ...(err.errors ? { errors: err.errors } : {}), ...internal(err.status, correlationId) },
      headers: err.headers,
    };
  }
  if (err instanceof XronoxError) {
    const { status, expose } = XRONOX_STATUS[err.code];
    const problem: Problem = { ...base(status, err.code, expose ? err.message : (GENERIC_DETAIL[status] ?? TITLES[status]!)), ...internal(status, correlationId) };
    if (err instanceof ValidationError && err.path !== undefined) problem.errors = [{ path: err.path, message: err.message }];
    const headers: Record<string, string> = {};
    if (err instanceof VersionConflictError) {
      problem.currentOv = err.actual;
      if (err.actual !== null) headers.ETag = etag(err.actual);
    }
    return { problem, headers };
  }
  if (err instanceof HTTPException && err.status < 500) {
    // Hono's own refusals (malformed JSON, 415 from the validator): their messages are fixed texts.
    const code = err.status === 413 ? 'CONTENT_TOO_LARGE' : err.status === 415 ? 'UNSUPPORTED_MEDIA_TYPE' : 'BAD_REQUEST';
    return { problem: base(err.status, code, err.message || (TITLES[err.status] ?? 'Bad Request')), headers: {} };
  }
  return { problem: { ...base(500, 'INTERNAL', GENERIC_DETAIL[500]!), correlationId }, headers: {} };
}

/** The strong entity tag of a record version: its ov in quotes. */
export function etag(ov: number): string {
  return `"${ov}"`;
}

function base(status: number, code: string, detail: string): Problem {
  return { type: 'about:blank', title: TITLES[status] ?? 'Error', status, detail, code };
}

function internal(status: number, correlationId: string): Partial<Problem> {
  return status >= 500 ? { correlationId } : {};
}

function formatPath(label: string, path: readonly PropertyKey[]): string {
  let out = label;
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : `.${String(part)}`;
  return out;
}
