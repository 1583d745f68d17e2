package controller

import "testing"

func TestContainerIDFromCgroup(t *testing.T) {
	const id = "3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e"
	tests := []struct{ name, cgroup, want string }{
		{"cgroup v2 systemd driver", "0::/system.slice/docker-" + id + ".scope\n", id},
		{"cgroup v1 cgroupfs driver", "12:memory:/docker/" + id + "\n11:cpu:/docker/" + id + "\n", id},
		{"cgroup v1 cgroupfs driver, Docker 20.10, every hierarchy and the unified line",
			"9:name=systemd:/docker/" + id + "\n4:memory:/docker/" + id + "\n1:cpu:/docker/" + id + "\n0::/docker/" + id + "\n", id},
		{"cgroup v1 systemd driver", "4:memory:/system.slice/docker-" + id + ".scope\n1:name=systemd:/system.slice/docker-" + id + ".scope\n", id},
		{"host process v2", "0::/user.slice/user-1000.slice/session-2.scope\n", ""},
		{"host process v1 with short hex", "4:memory:/process_api/41bb57616f11bc45de90a536f8172d4f\n0::/\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := containerIDIn([]byte(tt.cgroup)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
