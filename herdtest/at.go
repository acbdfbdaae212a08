package herdtest

import (
	"math/big"
	"strings"
	"time"

	"github.com/proxyherd/herd"
)

// ATLine returns the AT line (without newline) a server called server
// writes for "IAMAT client location clientTime" received at recv, computed
// independently of package herd (in big integers) so tests can check
// herd's replies against it. ok is false if clientTime is not a valid
// client time.
func ATLine(server string, recv time.Time, client, location, clientTime string) (line string, ok bool) {
	sec, nsec, ok := ParseClientTime(clientTime)
	if !ok {
		return "", false
	}
	// Everything in nanoseconds: recv - client.
	r := new(big.Int).Mul(big.NewInt(recv.Unix()), big.NewInt(1e9))
	r.Add(r, big.NewInt(int64(recv.Nanosecond())))
	c := new(big.Int).Mul(big.NewInt(sec), big.NewInt(1e9))
	c.Add(c, big.NewInt(int64(nsec)))
	d := r.Sub(r, c)
	sign := "+"
	if d.Sign() < 0 {
		sign = "-"
		d.Neg(d)
	}
	q, m := new(big.Int).QuoRem(d, big.NewInt(1e9), new(big.Int))
	frac := m.String()
	frac = strings.Repeat("0", 9-len(frac)) + frac
	return "AT " + server + " " + sign + q.String() + "." + frac + " " + client + " " + location + " " + clientTime, true
}

// ParseClientTime parses an IAMAT client time (D+ or D+.D+, whole seconds
// fitting in an int64) into seconds and the nanoseconds its first nine
// fraction digits give.
func ParseClientTime(s string) (sec int64, nsec int32, ok bool) {
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || !allDigits(whole) || (dot && (frac == "" || !allDigits(frac))) {
		return 0, 0, false
	}
	w, good := new(big.Int).SetString(whole, 10)
	if !good || !w.IsInt64() {
		return 0, 0, false
	}
	frac = (frac + "000000000")[:9]
	var ns int32
	for _, c := range frac {
		ns = ns*10 + int32(c-'0')
	}
	return w.Int64(), ns, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// RecordOf returns the herd.Record of an AT line built by ATLine (or any
// well-formed AT line), with the fields herd.Record.Compare uses. ok is
// false if line is not an AT line with six fields and a valid client time.
func RecordOf(line string) (r herd.Record, ok bool) {
	f := strings.Split(line, " ")
	if len(f) != 6 || f[0] != "AT" {
		return r, false
	}
	sec, nsec, ok := ParseClientTime(f[5])
	if !ok {
		return r, false
	}
	return herd.Record{Line: line, Server: f[1], Client: f[3], Location: f[4], Time: f[5], Sec: sec, Nsec: nsec}, true
}
