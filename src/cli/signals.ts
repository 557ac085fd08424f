/**
 * SIGINT/SIGTERM handling for the commands: the first signal asks the work to stop cleanly, a second one
 * exits at once with the conventional code (130 SIGINT, 143 SIGTERM).
 */

/** The exit code of a process stopped by `signal`. */
export function signalExitCode(signal: NodeJS.Signals): number {
  return signal === 'SIGINT' ? 130 : 143;
}

/** Calls `onSignal` on every SIGINT/SIGTERM until the returned function is called. */
function onTerminationSignals(onSignal: (signal: NodeJS.Signals) => void): () => void {
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

/**
 * Graceful shutdown on SIGTERM/SIGINT: the first signal starts `stop()`; a second one exits at once
 * (jobs still held then return to their queue when their lease expires).
 */
export async function runUntilSignalled<T>(
  stop: () => Promise<T>,
  onSecondSignal: (signal: NodeJS.Signals) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let stopping = false;
    const dispose = onTerminationSignals((signal) => {
      if (stopping) {
        onSecondSignal(signal);
        process.exit(signalExitCode(signal));
      }
      stopping = true;
      stop().then((value) => {
        dispose();
        resolve(value);
      }, reject);
    });
  });
}

export interface Interruption {
  /** Aborted by the first signal: pass it to the inspector operation, which stops at a safe point. */
  signal: AbortSignal;
  /** The exit code for the signal received (130 SIGINT, 143 SIGTERM), once one was. */
  exitCode(): number | undefined;
  dispose(): void;
}

/**
 * First SIGINT/SIGTERM: aborts `signal`, so a sweep stops after the batch in flight (each batch is one
 * atomic script, so every job is in exactly one place either way). A second one exits at once.
 */
export function interruptOnSignals(): Interruption {
  const controller = new AbortController();
  let received: NodeJS.Signals | undefined;
  const dispose = onTerminationSignals((signal) => {
    if (received) process.exit(signalExitCode(signal));
    received = signal;
    controller.abort(new Error(`interrupted by ${signal}`));
  });
  return {
    signal: controller.signal,
    exitCode: () => (received ? signalExitCode(received) : undefined),
    dispose,
  };
}
