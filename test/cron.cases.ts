/**
 * Schedules and whether Kubernetes accepts them for a CronJob (its parser
 * is robfig/cron's standard one: five fields or a descriptor). The unit
 * tests check our validator against this table; test/e2e/apiserver.e2e.test.ts
 * gives the same schedules to a real kube-apiserver, so the table is the API
 * server's behaviour, not ours restated.
 */
export const CRON_CASES: readonly [string, boolean][] = [
  ['15 3 * * *', true],
  ['*/10 * * * *', true],
  ['0 0-23/6 * * *', true],
  ['5,35 1 1,15 * *', true],
  ['0 4 * * MON-FRI', true],
  ['0 4 1 JAN,JUL *', true],
  ['0 4 * * sun', true],
  ['30 2 ? * 0', true],
  ['0 0 31 2 *', true],
  ['@daily', true],
  ['@midnight', true],
  ['@hourly', true],
  ['@weekly', true],
  ['@monthly', true],
  ['@yearly', true],
  ['@annually', true],
  ['@every 6h', true],
  ['60 * * * *', false],
  ['* 24 * * *', false],
  ['* * 0 * *', false],
  ['* * 32 * *', false],
  ['* * * 13 *', false],
  ['* * * * 7', false],
  ['* * * * 8', false],
  ['5-1 * * * *', false],
  ['*/0 * * * *', false],
  ['15 3 * *', false],
  ['15 3 * * * *', false],
  ['@sometimes', false],
  ['TZ=Europe/Berlin 15 3 * * *', false],
  ['CRON_TZ=UTC 15 3 * * *', false],
  ['15 3 * * FOO', false],
  ['', false],
];
