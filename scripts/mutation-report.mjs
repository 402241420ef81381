// What the mutation-testing commands read from Stryker's report (scripts/mutation.mjs, scripts/mutation-sample.mjs).
/** Mutants counted as survived though no test ran with them (file:line and the mutator), from a Stryker report. */
export function survivedUntested(report) {
  return Object.entries(report.files).flatMap(([file, { mutants }]) =>
    mutants.filter((m) => m.status === 'Survived' && m.testsCompleted === 0).map((m) => `${file}:${m.location.start.line} ${m.mutatorName}`),
  );
}
