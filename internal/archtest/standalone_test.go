package archtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestRepositoryStandsAlone fails when a tracked file relies on something a
// person who clones the repository does not get: a Markdown link to a file
// that is not in the repository (or lies outside it), or a path that points
// out of the work tree (a sibling folder, a machine's own directories).
func TestRepositoryStandsAlone(t *testing.T) {
	root := repoRoot(t)
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	var files []string
	for _, f := range strings.Split(string(out), "\x00") {
		if f != "" {
			files = append(files, f)
		}
	}
	if len(files) < 50 {
		t.Fatalf("git ls-files listed %d files", len(files))
	}
	var problems []string
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil || !isText(b) {
			continue
		}
		problems = append(problems, outsideRefs(root, f, string(b))...)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// TestOutsideRefsCatch proves the check finds what it is meant to.
func TestOutsideRefsCatch(t *testing.T) {
	root := repoRoot(t)
	cases := []struct {
		name, file, text string
		want             int
	}{
		{"link to a file that exists", "docs/ARCHITECTURE.md", "see [design](DESIGN.md)", 0},
		{"link with an anchor", "README.md", "[b](BENCHMARKS.md#testbed-scenarios)", 0},
		{"web link", "README.md", "[x](https://example.com/a.md)", 0},
		{"missing file", "README.md", "see [design](DESIGN.md)", 1},
		{"out of the tree", "docs/ARCHITECTURE.md", "[s](../../shared/STYLE.md)", 1},
		{"sibling folder named", "pushd/README.md", "as .." + "/shared/DESIGN.md says", 1},
		{"machine path", "scripts/x.sh", "cat /wo" + "rk/shared/DESIGN.md", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := outsideRefs(root, tc.file, tc.text); len(got) != tc.want {
				t.Fatalf("outsideRefs = %q, want %d problems", got, tc.want)
			}
		})
	}
}

var (
	mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	// Paths that only mean something on the machine a file was written on.
	outsidePath = regexp.MustCompile(`(^|[\s"'(=])(\.\./shared/|/work/|/home/[a-z]|~/shared)`)
)

func outsideRefs(root, file, text string) []string {
	var out []string
	if outsidePath.MatchString(text) {
		loc := outsidePath.FindStringIndex(text)
		line := strings.Count(text[:loc[0]], "\n") + 1
		out = append(out, file+":"+strconv.Itoa(line)+": refers to a path outside the repository")
	}
	if !strings.HasSuffix(file, ".md") {
		return out
	}
	for _, m := range mdLink.FindAllStringSubmatchIndex(text, -1) {
		target := text[m[2]:m[3]]
		if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") || strings.HasPrefix(target, "#") {
			continue
		}
		target, _, _ = strings.Cut(target, "#")
		line := strings.Count(text[:m[0]], "\n") + 1
		p := filepath.Clean(filepath.Join(root, filepath.Dir(file), target))
		if rel, err := filepath.Rel(root, p); err != nil || strings.HasPrefix(rel, "..") {
			out = append(out, file+":"+strconv.Itoa(line)+": link "+target+" leaves the repository")
			continue
		}
		if _, err := os.Stat(p); err != nil {
			out = append(out, file+":"+strconv.Itoa(line)+": link "+target+" names no file of the repository")
		}
	}
	return out
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s", root)
	}
	return root
}

func isText(b []byte) bool {
	if len(b) > 8000 {
		b = b[:8000]
	}
	return !strings.ContainsRune(string(b), 0)
}
