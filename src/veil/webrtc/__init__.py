"""WebRTC on this machine, for the Janus tests and ``veil demo --browser``: a network
namespace of its own (``netns``), Janus's VideoRoom inside it (``janus``), headless
Chromium inside it (``browsers``), Janus's recordings read back (``mjr``), and the
end-to-end encrypted meeting through Janus (``e2ee``). Each needs root, iproute2,
Janus or Chromium; without them it raises ``netns.Unavailable`` saying which."""
