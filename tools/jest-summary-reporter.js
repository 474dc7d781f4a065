// Prints one line the CI log can be grepped for: "tests: N passed, N failed".
class SummaryReporter {
  onRunComplete(_contexts, results) {
    process.stderr.write(`\ntests: ${results.numPassedTests} passed, ${results.numFailedTests} failed\n`);
  }
}
module.exports = SummaryReporter;
