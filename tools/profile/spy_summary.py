import sys, collections, re
counts = collections.Counter(); total = 0
for line in open(sys.argv[1]):
    stack, _, n = line.rstrip().rpartition(" ")
    n = int(n); total += n
    seen = set()
    for fr in stack.split(";"):
        name = re.sub(r" \(.*?:\d+\)$", "", fr)  # "func (file:line)" -> func (file)
        m = re.match(r"(.*?) \((.*?)(?::\d+)?\)$", fr)
        key = f"{m.group(1)} ({m.group(2).split('/')[-1]})" if m else fr
        if key not in seen:
            seen.add(key); counts[key] += n
print("samples", total)
for k, v in counts.most_common(int(sys.argv[2]) if len(sys.argv) > 2 else 30):
    print(f"{100*v/total:5.1f}%  {k}")
