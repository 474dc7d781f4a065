/**
 * The leader's appended-but-uncommitted payload, for the uncommittedBytesMax admission limit. Entries are
 * released in index order as the commit index passes them.
 */
export class UncommittedBytes {
  private indexes: number[] = [];
  private sizes: number[] = [];
  private head = 0;
  bytes = 0;

  add(index: number, bytes: number): void {
    this.indexes.push(index);
    this.sizes.push(bytes);
    this.bytes += bytes;
  }

  releaseTo(commit: number): void {
    while (this.head < this.indexes.length && this.indexes[this.head] <= commit)
      this.bytes -= this.sizes[this.head++];
    // Drop the released prefix now and then, so the arrays do not grow without bound.
    if (this.head > 1024 && this.head * 2 > this.indexes.length) {
      this.indexes = this.indexes.slice(this.head);
      this.sizes = this.sizes.slice(this.head);
      this.head = 0;
    }
  }

  reset(): void {
    this.indexes = [];
    this.sizes = [];
    this.head = 0;
    this.bytes = 0;
  }
}
