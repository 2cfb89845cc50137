import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createTestDatabaseInfo, pgbenchInit, startPostgres } from '../test/harness/pg.ts';
import { startS3 } from '../test/harness/s3.ts';
import { makeProject } from '../test/harness/project.ts';
function makeFilestore(dir: string, mb: number): void {
  let left = mb * 1024 * 1024; let i = 0;
  while (left > 0) {
    const sub = path.join(dir, crypto.randomBytes(1).toString('hex'));
    fs.mkdirSync(sub, { recursive: true });
    const size = Math.min(left, 64 * 1024 + ((i * 7919) % (900 * 1024)));
    const data = i % 10 === 9 ? Buffer.from('<html><body>invoice line\n</body></html>\n'.repeat(Math.ceil(size / 40))).subarray(0, size) : crypto.randomBytes(size);
    fs.writeFileSync(path.join(sub, crypto.randomBytes(20).toString('hex')), data);
    left -= size; i++;
  }
}
const [pg, s3] = await Promise.all([startPostgres(), startS3()]);
const db = await createTestDatabaseInfo(pg.info, 'bench_bk');
await pgbenchInit(pg.info, db.name, 50);
const project = await makeProject({ env: { DATABASE_URL: db.url, S3_BUCKET: s3.info.bucket, S3_ENDPOINT: s3.info.endpoint, S3_REGION: s3.info.region, S3_PREFIX: 'new/', AWS_ACCESS_KEY_ID: s3.info.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.info.secretAccessKey } });
const tasksFile = path.join(project.dir, 'tasks.ts');
fs.writeFileSync(tasksFile, fs.readFileSync(tasksFile, 'utf8').replace(/\{ name: 'filestore', kind: 'volume'[^}]*\}/, "{ name: 'filestore', kind: 'path', path: 'data/filestore' }"));
makeFilestore(path.join(project.dir, 'data', 'filestore'), 200);
fs.writeFileSync('/tmp/bkenv.txt', project.dir + '\n');
process.stderr.write(`ready ${project.dir}\n`);
setInterval(() => undefined, 1 << 30);
