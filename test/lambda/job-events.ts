/**
 * The events the background-job functions of serverless.yml receive, as AWS sends them:
 * - S3 event notifications (https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html),
 *   event structure 2.1, one record per object, the key URL-encoded (spaces as `+`);
 * - EventBridge scheduled events (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-run-lambda-schedule.html),
 *   `time` to the second, in UTC.
 *
 * (test/jobs/support.ts has the same two for the in-process handler tests; these are the
 * packaging tests' own, so that loading them does not pull in the job tests' backends.)
 */
import { createHash, randomUUID } from 'node:crypto';

const REGION = 'eu-west-1';
const ACCOUNT = '123456789012';

export interface S3EventRecordV2 {
  eventVersion: string;
  eventSource: 'aws:s3';
  awsRegion: string;
  eventTime: string;
  eventName: string;
  userIdentity: { principalId: string };
  requestParameters: { sourceIPAddress: string };
  responseElements: Record<string, string>;
  s3: {
    s3SchemaVersion: '1.0';
    configurationId: string;
    bucket: { name: string; ownerIdentity: { principalId: string }; arn: string };
    object: { key: string; size: number; eTag: string; sequencer: string; versionId?: string };
  };
}

let sequence = 0;

/** One `ObjectCreated:Put` notification per key (not encoded; encoded here as S3 does). */
export function s3PutEvent(bucket: string, keys: string[], configurationId = 'archive-current-json'): { Records: S3EventRecordV2[] } {
  return {
    Records: keys.map((key) => {
      sequence++;
      return {
        eventVersion: '2.1',
        eventSource: 'aws:s3',
        awsRegion: REGION,
        eventTime: new Date().toISOString(),
        eventName: 'ObjectCreated:Put',
        userIdentity: { principalId: 'AWS:AROAEXAMPLEXRONOXAPI:xronox-ci-api' },
        requestParameters: { sourceIPAddress: '10.0.12.34' },
        responseElements: { 'x-amz-request-id': randomUUID().replace(/-/g, '').slice(0, 16).toUpperCase(), 'x-amz-id-2': createHash('sha256').update(key).digest('base64') },
        s3: {
          s3SchemaVersion: '1.0',
          configurationId,
          bucket: { name: bucket, ownerIdentity: { principalId: 'A3NL1KOZZKEXAMPLE' }, arn: `arn:aws:s3:::${bucket}` },
          object: {
            key: encodeURIComponent(key).replace(/%2F/g, '/').replace(/%20/g, '+'),
            size: 120,
            eTag: createHash('md5').update(`${key}${sequence}`).digest('hex'),
            sequencer: `${Date.now().toString(16)}${sequence.toString(16).padStart(6, '0')}`.toUpperCase(),
          },
        },
      };
    }),
  };
}

export interface ScheduledEventV0 {
  version: '0';
  id: string;
  'detail-type': 'Scheduled Event';
  source: 'aws.events';
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: Record<string, never>;
}

/** What an EventBridge `schedule` rule delivers at `at`. */
export function scheduledEvent(at: Date, rule: string): ScheduledEventV0 {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: ACCOUNT,
    time: at.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region: REGION,
    resources: [`arn:aws:events:${REGION}:${ACCOUNT}:rule/${rule}`],
    detail: {},
  };
}
