/**
 * The harness itself: what it does with a program that does not get ready. A program left running after its
 * start failed keeps jest from ending (its handle holds the event loop), so the run hangs until it is killed.
 */
import { Program, tempDir } from './harness';

test('a program whose wait runs out of time is stopped, and the error names what it waited for', async () => {
  const p = new Program('sleeper', 'sleep', ['600'], { logDir: tempDir('harness') });
  try {
    expect(p.running).toBe(true);
    await expect(p.waitFor('the impossible', () => false, 300)).rejects.toThrow(/^sleeper: no the impossible within 300 ms/);
    expect(p.running).toBe(false);
  } finally {
    await p.stop(); // only for the failure's sake: the run must end either way
  }
});

test('a program that exits before it is ready: the error says so, with its log', async () => {
  const p = new Program('quitter', 'sh', ['-c', 'echo "cannot bind"; exit 3'], { logDir: tempDir('harness') });
  await expect(p.waitFor('its port', () => false, 10_000)).rejects.toThrow(/^quitter exited \(\{"code":3,"signal":null\}\) before its port:\ncannot bind/);
});
