/**
 * A small SQS-protocol server for tests (there is no SQS here): it speaks the JSON protocol that
 * `@aws-sdk/client-sqs` uses (`POST /`, `X-Amz-Target: AmazonSQS.<Action>`,
 * `application/x-amz-json-1.0`), keeps what is sent per queue URL, and answers as SQS does,
 * MD5 of each body included (the SDK checks it). Only what the job fan-out sends is implemented:
 * `SendMessageBatch` and `SendMessage`; anything else is an `UnsupportedOperation` error.
 * `refuse` makes it fail entries the way SQS reports a partial failure.
 *
 * It is an honest stand-in for the wire, not for SQS's delivery: tests turn what it received
 * into the SQS event payloads Lambda would deliver (`sqsEvent`).
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SQSEvent, SQSRecord } from 'aws-lambda';

export interface SentMessage {
  queueUrl: string;
  messageId: string;
  body: string;
  delaySeconds: number;
  /** How many SendMessageBatch / SendMessage calls came before the one that carried it. */
  call: number;
}

export interface SqsServer {
  readonly endpoint: string;
  /** A queue URL on this server. */
  queueUrl(name: string): string;
  /** Every message accepted, in order. */
  readonly sent: SentMessage[];
  /** Every call, by action (`SendMessageBatch`: entries per call). */
  readonly calls: Array<{ action: string; entries: number; authorized: boolean }>;
  /** Entries this predicate picks are refused (`SenderFault` as it says), once each. */
  refuse: ((body: string) => { code: string; senderFault: boolean } | null) | null;
  close(): Promise<void>;
}

const md5 = (text: string) => createHash('md5').update(text, 'utf8').digest('hex');

export async function startSqsServer(): Promise<SqsServer> {
  const sent: SentMessage[] = [];
  const calls: SqsServer['calls'] = [];
  const state = { refuse: null as SqsServer['refuse'] };
  const reply = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': randomUUID() });
    res.end(JSON.stringify(body));
  };
  const error = (res: ServerResponse, status: number, type: string, message: string) =>
    reply(res, status, { __type: `com.amazonaws.sqs#${type}`, message });

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const target = String(req.headers['x-amz-target'] ?? '');
      const action = target.startsWith('AmazonSQS.') ? target.slice('AmazonSQS.'.length) : '';
      const authorized = /^AWS4-HMAC-SHA256 Credential=/.test(String(req.headers.authorization ?? ''));
      let input: Record<string, unknown>;
      try {
        input = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
      } catch {
        return error(res, 400, 'InvalidParameterValue', 'not JSON');
      }
      const queueUrl = String(input.QueueUrl ?? '');
      if (!queueUrl.startsWith(endpoint)) return error(res, 400, 'QueueDoesNotExist', `no queue ${queueUrl}`);
      const call = calls.length;
      if (action === 'SendMessageBatch') {
        const entries = (input.Entries ?? []) as Array<{ Id: string; MessageBody: string; DelaySeconds?: number }>;
        calls.push({ action, entries: entries.length, authorized });
        if (entries.length === 0 || entries.length > 10) return error(res, 400, entries.length === 0 ? 'EmptyBatchRequest' : 'TooManyEntriesInBatchRequest', 'bad batch');
        const Successful: unknown[] = [];
        const Failed: unknown[] = [];
        for (const e of entries) {
          const refusal = state.refuse?.(e.MessageBody) ?? null;
          if (refusal) {
            Failed.push({ Id: e.Id, SenderFault: refusal.senderFault, Code: refusal.code, Message: 'refused by the test' });
            continue;
          }
          const messageId = randomUUID();
          sent.push({ queueUrl, messageId, body: e.MessageBody, delaySeconds: e.DelaySeconds ?? 0, call });
          Successful.push({ Id: e.Id, MessageId: messageId, MD5OfMessageBody: md5(e.MessageBody) });
        }
        return reply(res, 200, { Successful, Failed });
      }
      if (action === 'SendMessage') {
        calls.push({ action, entries: 1, authorized });
        const body = String(input.MessageBody ?? '');
        const messageId = randomUUID();
        sent.push({ queueUrl, messageId, body, delaySeconds: Number(input.DelaySeconds ?? 0), call });
        return reply(res, 200, { MessageId: messageId, MD5OfMessageBody: md5(body) });
      }
      calls.push({ action, entries: 0, authorized });
      return error(res, 400, 'UnsupportedOperation', `${action || target} is not implemented by the test server`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    endpoint,
    queueUrl: (name) => `${endpoint}/123456789012/${name}`,
    sent,
    calls,
    get refuse() {
      return state.refuse;
    },
    set refuse(f) {
      state.refuse = f;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** The SQS event Lambda delivers for these messages (event source mapping, batch as given). */
export function sqsEvent(messages: readonly Pick<SentMessage, 'messageId' | 'body'>[], queueArn = 'arn:aws:sqs:us-east-1:123456789012:xronox-test-jobs'): SQSEvent {
  const now = Date.now();
  return {
    Records: messages.map(
      (m, i): SQSRecord => ({
        messageId: m.messageId,
        receiptHandle: Buffer.from(`${m.messageId}#${now}#${i}`).toString('base64'),
        body: m.body,
        attributes: {
          ApproximateReceiveCount: '1',
          SentTimestamp: String(now),
          SenderId: 'AROAEXAMPLEXRONOX:xronox-coordinator',
          ApproximateFirstReceiveTimestamp: String(now + 5),
        },
        messageAttributes: {},
        md5OfBody: md5(m.body),
        eventSource: 'aws:sqs',
        eventSourceARN: queueArn,
        awsRegion: 'us-east-1',
      }),
    ),
  };
}
