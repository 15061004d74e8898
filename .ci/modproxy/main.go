// Command modproxy writes one version of a module, made from a git commit,
// into a directory laid out as a GOPROXY (the "file://" form). CI uses it to
// build github.com/mcpkit/resilience at the release version named in
// .ci/release, so that the nested module extra/resilientotel resolves the
// root the way a user's go get does, with no replace directive, even when
// the release tag did not travel with the branch.
//
// Usage:
//
//	go run . -repo ../.. -module github.com/mcpkit/resilience -version v0.3.0 -commit <sha> -out <dir>
//
// It lives in a module of its own so that the root module does not depend on
// golang.org/x/mod.
package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	modzip "golang.org/x/mod/zip"
)

func main() {
	repo := flag.String("repo", ".", "git work tree holding the module at its root")
	modPath := flag.String("module", "", "module path, e.g. github.com/mcpkit/resilience")
	version := flag.String("version", "", "canonical semantic version to publish, e.g. v0.3.0")
	commit := flag.String("commit", "", "git commit whose tree is that version")
	out := flag.String("out", "", "GOPROXY directory to write into (created if missing)")
	flag.Parse()
	if err := run(*repo, *modPath, *version, *commit, *out); err != nil {
		fmt.Fprintln(os.Stderr, "modproxy:", err)
		os.Exit(1)
	}
}

func run(repo, modPath, version, commit, out string) error {
	switch {
	case modPath == "":
		return errors.New("-module is required")
	case version == "" || !semver.IsValid(version) || semver.Canonical(version) != version:
		return fmt.Errorf("-version %q is not a canonical semantic version like v0.3.0", version)
	case commit == "":
		return errors.New("-commit is required")
	case out == "":
		return errors.New("-out is required")
	}
	mv := module.Version{Path: modPath, Version: version}
	if err := module.Check(mv.Path, mv.Version); err != nil {
		return err
	}
	full, err := git(repo, "rev-parse", "--verify", commit+"^{commit}")
	if err != nil {
		return fmt.Errorf("commit %q: %w", commit, err)
	}
	full = strings.TrimSpace(full)
	gomod, err := git(repo, "show", full+":go.mod")
	if err != nil {
		return fmt.Errorf("go.mod at %s: %w", full, err)
	}
	if got := modulePathOf(gomod); got != modPath {
		return fmt.Errorf("go.mod at %s declares module %q, not %q", full, got, modPath)
	}
	ts, err := git(repo, "show", "-s", "--format=%cI", full)
	if err != nil {
		return err
	}
	when, err := time.Parse(time.RFC3339, strings.TrimSpace(ts))
	if err != nil {
		return fmt.Errorf("commit time %q: %w", ts, err)
	}

	escaped, err := module.EscapePath(modPath)
	if err != nil {
		return err
	}
	dir := filepath.Join(out, filepath.FromSlash(escaped), "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	zf, err := os.Create(filepath.Join(dir, version+".zip"))
	if err != nil {
		return err
	}
	tree, err := os.MkdirTemp("", "modproxy-")
	if err != nil {
		zf.Close()
		return err
	}
	defer os.RemoveAll(tree)
	if err := extract(repo, full, tree); err != nil {
		zf.Close()
		return err
	}
	// CreateFromDir applies the go command's rules: nested modules, vendor
	// directories and files that cannot be in a module are left out, so the
	// zip hashes to what the go command computes for the same tree. The tree
	// comes from git archive rather than CreateFromVCS because CreateFromVCS
	// does not recognise a linked work tree (where .git is a file).
	if err := modzip.CreateFromDir(zf, mv, tree); err != nil {
		zf.Close()
		return fmt.Errorf("module zip: %w", err)
	}
	if err := zf.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, version+".mod"), []byte(gomod), 0o644); err != nil {
		return err
	}
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{version, when.UTC()})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, version+".info"), info, 0o644); err != nil {
		return err
	}
	return addToList(filepath.Join(dir, "list"), version)
}

// extract writes the tree of commit into dir, as git archive exports it.
func extract(repo, commit, dir string) error {
	cmd := exec.Command("git", "archive", "--format=tar", commit)
	cmd.Dir = repo
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	tr := tar.NewReader(stdout)
	var werr error
	for werr == nil {
		var h *tar.Header
		h, werr = tr.Next()
		if werr == io.EOF {
			werr = nil
			break
		}
		if werr != nil {
			break
		}
		werr = writeEntry(dir, h, tr)
	}
	_, _ = io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("git archive %s: %v: %s", commit, err, strings.TrimSpace(stderr.String()))
	}
	return werr
}

func writeEntry(dir string, h *tar.Header, r io.Reader) error {
	name := filepath.FromSlash(h.Name)
	if !filepath.IsLocal(name) {
		return fmt.Errorf("git archive entry %q leaves the tree", h.Name)
	}
	target := filepath.Join(dir, name)
	switch h.Typeflag {
	case tar.TypeDir:
		return os.MkdirAll(target, 0o755)
	case tar.TypeReg:
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o777)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	case tar.TypeSymlink:
		// The go command leaves symbolic links out of module zips too.
		return nil
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("git archive entry %q has unsupported type %q", h.Name, h.Typeflag)
	}
}

// addToList records version in the proxy's list file, once.
func addToList(path, version string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, line := range strings.Split(string(old), "\n") {
		if strings.TrimSpace(line) == version {
			return nil
		}
	}
	return os.WriteFile(path, append(old, version+"\n"...), 0o644)
}

func modulePathOf(gomod string) string {
	for _, line := range strings.Split(gomod, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(outb), nil
}
