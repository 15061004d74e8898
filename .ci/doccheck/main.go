// Command doccheck checks the comments of the Go packages under a
// directory:
//
//   - every doc link ([Name], [Name.Member], [pkg], [pkg.Name],
//     [pkg.Name.Member]) in a doc comment resolves to a declaration;
//   - every mention of a module package's name, as pkg.Name (resume.Dedup),
//     names something that package declares;
//   - no comment points outside the repository or tells history: research
//     notes, "§" sections, "finding N", "issue N", shared/ paths;
//   - error strings made with errors.New or fmt.Errorf that start with a
//     module package's name followed by ": " start with their own
//     package's name.
//
// Usage, from the repository root:
//
//	(cd .ci/doccheck && GOWORK=off go run . ../..)
//
// It prints one line per violation, file:line: what, and exits 1 if there
// is any. It lives in a module of its own and uses only the standard
// library.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// pkgInfo is what doccheck knows of one package: its name, its top-level
// names, and the members (methods and fields) of its types.
type pkgInfo struct {
	path, name, dir string
	names           map[string]bool
	members         map[string]map[string]bool
	files           []*ast.File // non-test files, for the module's own packages
	testFiles       []*ast.File
}

type checker struct {
	fset     *token.FileSet
	root     string
	local    map[string]*pkgInfo // by import path, the module's packages
	byName   map[string][]*pkgInfo
	external map[string]*pkgInfo // by import path, loaded on demand
	modRoots map[string]string   // package dir -> its module root
	problems []string
}

func main() {
	root := "."
	if len(os.Args) > 1 {
		root = os.Args[1]
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "doccheck:", err)
		os.Exit(2)
	}
	c := &checker{fset: token.NewFileSet(), root: abs, local: map[string]*pkgInfo{},
		byName: map[string][]*pkgInfo{}, external: map[string]*pkgInfo{}, modRoots: map[string]string{}}
	if err := c.load(); err != nil {
		fmt.Fprintln(os.Stderr, "doccheck:", err)
		os.Exit(2)
	}
	c.check()
	sort.Strings(c.problems)
	for _, p := range c.problems {
		fmt.Println(p)
	}
	if len(c.problems) > 0 {
		fmt.Fprintf(os.Stderr, "doccheck: %d problem(s)\n", len(c.problems))
		os.Exit(1)
	}
}

// load parses every package under the root, in the modules found there
// (directories with a go.mod), skipping testdata, node_modules and
// directories whose name starts with "." or "_".
func (c *checker) load() error {
	return filepath.WalkDir(c.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != c.root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "node_modules") {
			return filepath.SkipDir
		}
		modRoot, modPath, err := c.moduleOf(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(modRoot, path)
		if err != nil {
			return err
		}
		importPath := modPath
		if rel != "." {
			importPath += "/" + filepath.ToSlash(rel)
		}
		info, err := c.parseDir(path, importPath, true)
		if err != nil || info == nil {
			return err
		}
		c.modRoots[path] = modRoot
		c.local[importPath] = info
		c.byName[info.name] = append(c.byName[info.name], info)
		return nil
	})
}

// moduleOf returns the root and path of the module holding dir.
func (c *checker) moduleOf(dir string) (string, string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if f := strings.Fields(line); len(f) >= 2 && f[0] == "module" {
					return d, strings.Trim(f[1], `"`), nil
				}
			}
			return "", "", fmt.Errorf("%s/go.mod has no module line", d)
		}
		if d == c.root || d == filepath.Dir(d) {
			return "", "", fmt.Errorf("no go.mod at or above %s", dir)
		}
	}
}

// parseDir parses the Go files of dir (test files too when withTests) and
// collects its declarations. It returns nil for a directory without Go
// files.
func (c *checker) parseDir(dir, importPath string, withTests bool) (*pkgInfo, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	info := &pkgInfo{path: importPath, dir: dir, names: map[string]bool{}, members: map[string]map[string]bool{}}
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") {
			continue
		}
		test := strings.HasSuffix(n, "_test.go")
		if test && !withTests {
			continue
		}
		f, err := parser.ParseFile(c.fset, filepath.Join(dir, n), nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		if test {
			info.testFiles = append(info.testFiles, f)
			continue
		}
		if info.name == "" || info.name == "main" && f.Name.Name != "main" {
			info.name = f.Name.Name
		}
		if f.Name.Name != info.name {
			continue // an ignored file of another package (a build-tagged tool)
		}
		info.files = append(info.files, f)
		collect(info, f)
	}
	if len(info.files) == 0 && len(info.testFiles) == 0 {
		return nil, nil
	}
	if info.name == "" {
		info.name = strings.TrimSuffix(info.testFiles[0].Name.Name, "_test")
	}
	return info, nil
}

// collect records the declarations of f in info.
func collect(info *pkgInfo, f *ast.File) {
	member := func(typ, name string) {
		if info.members[typ] == nil {
			info.members[typ] = map[string]bool{}
		}
		info.members[typ][name] = true
	}
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil {
				info.names[d.Name.Name] = true
				continue
			}
			if len(d.Recv.List) == 1 {
				member(recvType(d.Recv.List[0].Type), d.Name.Name)
			}
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.ValueSpec:
					for _, n := range s.Names {
						info.names[n.Name] = true
					}
				case *ast.TypeSpec:
					info.names[s.Name.Name] = true
					switch t := s.Type.(type) {
					case *ast.StructType:
						for _, fld := range t.Fields.List {
							for _, n := range fld.Names {
								member(s.Name.Name, n.Name)
							}
							if len(fld.Names) == 0 {
								member(s.Name.Name, recvType(fld.Type))
							}
						}
					case *ast.InterfaceType:
						for _, m := range t.Methods.List {
							for _, n := range m.Names {
								member(s.Name.Name, n.Name)
							}
						}
					}
				}
			}
		}
	}
}

// recvType is the name of a receiver or embedded type: T, *T, T[P], pkg.T.
func recvType(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return recvType(t.X)
	case *ast.IndexExpr:
		return recvType(t.X)
	case *ast.IndexListExpr:
		return recvType(t.X)
	case *ast.SelectorExpr:
		return t.Sel.Name
	case *ast.Ident:
		return t.Name
	}
	return ""
}

var (
	docLink  = regexp.MustCompile(`(^|[^\w\]\[.])\[([A-Za-z_]\w*(?:\.[A-Za-z_]\w*){0,2})\]([^(:\w]|$)`)
	mention  = regexp.MustCompile(`(^|[^\w./])([a-z]\w*)\.([A-Z]\w*)(?:\.([A-Z]\w*))?`)
	outside  = regexp.MustCompile(`(?i)\bresearch\b|§|\bfinding \d|\bissue \d+|\bdefect \d|\bdone-when\b|\bthe [a-z-]+ issue\b|\bshared/|/work/`)
	errorPfx = regexp.MustCompile(`^"([a-z][a-z0-9]*): `)
	// dead names things that are gone and that comments still name
	// without a package qualifier, so the mention check cannot see them.
	dead = regexp.MustCompile(`\bMemoryStore\b`)
)

func (c *checker) problem(pos token.Pos, format string, args ...any) {
	p := c.fset.Position(pos)
	rel, err := filepath.Rel(c.root, p.Filename)
	if err != nil {
		rel = p.Filename
	}
	c.problems = append(c.problems, fmt.Sprintf("%s:%d: %s", filepath.ToSlash(rel), p.Line, fmt.Sprintf(format, args...)))
}

func (c *checker) check() {
	paths := make([]string, 0, len(c.local))
	for p := range c.local {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		info := c.local[p]
		for _, f := range info.files {
			c.checkFile(info, f, false)
		}
		for _, f := range info.testFiles {
			c.checkFile(info, f, true)
		}
	}
}

func (c *checker) checkFile(info *pkgInfo, f *ast.File, test bool) {
	imports := c.imports(info, f, test)
	for _, cg := range f.Comments {
		for _, cm := range cg.List {
			if outside.MatchString(cm.Text) {
				c.problem(cm.Slash, "comment points outside the repository or tells history: %q", strings.TrimSpace(outside.FindString(cm.Text)))
			}
			if test {
				continue
			}
			if m := dead.FindString(cm.Text); m != "" {
				c.problem(cm.Slash, "comment names %s, which does not exist", m)
			}
			for _, m := range mention.FindAllStringSubmatch(cm.Text, -1) {
				c.checkMention(info, imports, cm.Slash, m[2], m[3], m[4])
			}
		}
	}
	if test {
		return
	}
	if info.name != "main" { // a command's doc is its usage text: [ARGS] is no link
		for _, cg := range docComments(f) {
			for _, cm := range cg.List {
				line := strings.TrimPrefix(cm.Text, "//")
				if strings.HasPrefix(line, "\t") || strings.HasPrefix(line, "   ") {
					continue // a code block
				}
				for _, m := range docLink.FindAllStringSubmatch(line, -1) {
					if !c.resolves(info, imports, m[2]) {
						c.problem(cm.Slash, "doc link [%s] does not resolve", m[2])
					}
				}
			}
		}
	}
	if info.name == "main" {
		return
	}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		x, ok := sel.X.(*ast.Ident)
		if !ok || !(x.Name == "errors" && sel.Sel.Name == "New" || x.Name == "fmt" && sel.Sel.Name == "Errorf") {
			return true
		}
		lit, ok := call.Args[0].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		if m := errorPfx.FindStringSubmatch(lit.Value); m != nil && m[1] != info.name && len(c.byName[m[1]]) > 0 {
			c.problem(lit.Pos(), "error string starts with %q, not with its own package %q", m[1]+":", info.name+":")
		}
		return true
	})
}

// imports maps the names under which f's package imports packages to
// their paths. Doc links resolve against the imports of every file of the
// package, as go doc resolves them; a test file adds its own.
func (c *checker) imports(info *pkgInfo, f *ast.File, test bool) map[string]string {
	imports := map[string]string{}
	files := info.files
	if test {
		files = append(files[:len(files):len(files)], f)
	}
	for _, file := range files {
		for _, imp := range file.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			var name string
			switch {
			case imp.Name != nil:
				name = imp.Name.Name
			case c.local[path] != nil:
				name = c.local[path].name
			default:
				name = guessName(path)
			}
			if name != "_" && name != "." {
				imports[name] = path
			}
		}
	}
	return imports
}

// docComments returns the comments that go doc shows: the package's, and
// those of declarations, specs and fields.
func docComments(f *ast.File) []*ast.CommentGroup {
	var out []*ast.CommentGroup
	add := func(cg *ast.CommentGroup) {
		if cg != nil {
			out = append(out, cg)
		}
	}
	add(f.Doc)
	ast.Inspect(f, func(n ast.Node) bool {
		switch d := n.(type) {
		case *ast.FuncDecl:
			add(d.Doc)
			return false
		case *ast.GenDecl:
			add(d.Doc)
		case *ast.TypeSpec:
			add(d.Doc)
		case *ast.ValueSpec:
			add(d.Doc)
		case *ast.Field:
			add(d.Doc)
		}
		return true
	})
	return out
}

// checkMention checks "pkg.Name" (and "pkg.Name.Member") where pkg is the
// name of one of the module's packages.
func (c *checker) checkMention(info *pkgInfo, imports map[string]string, pos token.Pos, pkg, name, member string) {
	var cands []*pkgInfo
	if path, ok := imports[pkg]; ok {
		if p := c.pkg(info, path); p != nil {
			cands = []*pkgInfo{p}
		}
	} else {
		cands = c.byName[pkg]
	}
	if len(cands) == 0 {
		return // not a package of the module, nor an import: prose
	}
	for _, p := range cands {
		if p.names[name] && (member == "" || p.members[name][member] || !p.hasMembers(name)) {
			return
		}
		if p.names[name] && member != "" && !p.members[name][member] {
			continue
		}
	}
	if member != "" {
		c.problem(pos, "comment names %s.%s.%s, which does not exist", pkg, name, member)
		return
	}
	c.problem(pos, "comment names %s.%s, which does not exist", pkg, name)
}

func (p *pkgInfo) hasMembers(typ string) bool { return len(p.members[typ]) > 0 }

// resolves reports whether a doc link target resolves, as go doc would.
func (c *checker) resolves(info *pkgInfo, imports map[string]string, target string) bool {
	parts := strings.Split(target, ".")
	switch len(parts) {
	case 1:
		if info.names[parts[0]] || builtins[parts[0]] {
			return true
		}
		_, ok := imports[parts[0]]
		return ok
	case 2:
		if info.names[parts[0]] {
			return info.members[parts[0]][parts[1]]
		}
		if path, ok := imports[parts[0]]; ok {
			p := c.pkg(info, path)
			return p == nil || p.names[parts[1]]
		}
		return false
	default:
		path, ok := imports[parts[0]]
		if !ok {
			return false
		}
		p := c.pkg(info, path)
		return p == nil || p.members[parts[1]][parts[2]]
	}
}

// pkg returns the package at import path, loading a package from outside
// the module with go list from the importing package's module. It returns
// nil when the package cannot be found (the link is then not judged).
func (c *checker) pkg(from *pkgInfo, path string) *pkgInfo {
	if p, ok := c.local[path]; ok {
		return p
	}
	if p, ok := c.external[path]; ok {
		return p
	}
	c.external[path] = nil
	if !strings.Contains(strings.Split(path, "/")[0], ".") {
		// The standard library.
		cmd := exec.Command("go", "env", "GOROOT")
		out, err := cmd.Output()
		if err != nil {
			return nil
		}
		dir := filepath.Join(strings.TrimSpace(string(out)), "src", filepath.FromSlash(path))
		p, err := c.parseDir(dir, path, false)
		if err == nil {
			c.external[path] = p
		}
		return c.external[path]
	}
	cmd := exec.Command("go", "list", "-json", path)
	cmd.Dir = c.modRoots[from.dir]
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return nil
	}
	var listed struct{ Dir string }
	if err := json.Unmarshal(out.Bytes(), &listed); err != nil || listed.Dir == "" {
		return nil
	}
	p, err := c.parseDir(listed.Dir, path, false)
	if err == nil {
		c.external[path] = p
	}
	return c.external[path]
}

// guessName is the package name an import path most likely declares: its
// last element without a major version suffix or a "go-" prefix.
func guessName(path string) string {
	elems := strings.Split(path, "/")
	last := elems[len(elems)-1]
	if len(elems) > 1 && regexp.MustCompile(`^v\d+$`).MatchString(last) {
		last = elems[len(elems)-2]
	}
	last = strings.TrimPrefix(last, "go-")
	return strings.ReplaceAll(last, "-", "")
}

var builtins = map[string]bool{
	"error": true, "string": true, "bool": true, "int": true, "int64": true, "uint64": true,
	"any": true, "byte": true, "rune": true, "float64": true, "nil": true, "true": true, "false": true,
	"len": true, "cap": true, "append": true, "panic": true, "recover": true, "close": true,
}
