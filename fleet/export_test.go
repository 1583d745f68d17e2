package fleet

// Migrations lists the embedded migrations' file names in order.
func Migrations() ([]string, error) {
	all, err := fleetMigrations()
	var names []string
	for _, m := range all {
		names = append(names, m.Name)
	}
	return names, err
}

// LeaseLockSpace is the first key of the per-provider lease lock.
const LeaseLockSpace = leaseLockSpace

// LeaseSize is what one lease asks for a provider.
var LeaseSize = leaseSize
