# summary.awk reads `go test -bench` output and prints, for every figure
# measured beside a reference in the same run, one row: benchmark, figure,
# value, reference figure, its value and the ratio. References are paired
# by name: plain-X for routed-X (and <route>-plain-X for <route>-routed-X),
# ref-X for X and pgb-X, login-4096-ms for the other login-*-ms.
#
#	go test ./bench -run '^$' -bench . | awk -f bench/summary.awk
/^Benchmark/ && NF > 3 {
	name = $1
	sub(/-[0-9]+$/, "", name)
	delete v
	for (i = 3; i < NF; i += 2) {
		v[$(i + 1)] = $i
		order[name, ++n[name]] = $(i + 1)
	}
	for (k = 1; k <= n[name]; k++) {
		m = order[name, k]
		ref = ""
		if (m ~ /(^|-)routed-/) {
			ref = m
			sub(/routed-/, "plain-", ref)
		} else if (m ~ /^login-/ && m != "login-4096-ms" && m ~ /-ms$/) {
			ref = "login-4096-ms"
		} else if (m ~ /^pgb-/) {
			ref = "ref-" substr(m, 5)
		} else if (m !~ /^ref-/ && ("ref-" m) in v) {
			ref = "ref-" m
		}
		if (ref == "" || !(ref in v) || !(m ~ /req\/s$|-ms$/))
			continue
		ratio = (v[ref] + 0 != 0) ? sprintf("%.2f", v[m] / v[ref]) : "-"
		rows[++r] = sprintf("%-28s %-24s %12s %-24s %12s %6s", name, m, v[m], ref, v[ref], ratio)
	}
	delete n
}
END {
	if (r == 0)
		exit
	printf "%-28s %-24s %12s %-24s %12s %6s\n", "benchmark", "figure", "value", "reference", "value", "ratio"
	for (i = 1; i <= r; i++)
		print rows[i]
}
