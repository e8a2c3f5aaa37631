# What the bench programs read of their own OS process from /proc: its resident memory, and
# the CPU time (user + system, counted in clock ticks of 10 ms) of the whole process or of
# each of its threads.
defmodule Bench.Proc do
  @tick_us 10_000

  @doc "Microseconds in one clock tick of /proc's CPU times."
  def tick_us, do: @tick_us

  @doc "The process's resident set size, in KiB."
  def rss_kib do
    [_, kib] = Regex.run(~r/VmRSS:\s+(\d+) kB/, File.read!("/proc/self/status"))
    String.to_integer(kib)
  end

  @doc "User + system time of the whole process (every scheduler, dirty and native thread), µs."
  def cpu_micros do
    {_name, utime, stime} = stat(File.read!("/proc/self/stat"))
    (utime + stime) * @tick_us
  end

  @doc """
  `{kind, utime, stime, switches}` by thread id: CPU time in ticks, and how often the thread
  has given up its core, of its own accord (to sleep: each time it is woken again) or not.
  The kind is the thread's name without the number the VM puts in front ("1_scheduler",
  "3_dirty_io_sche": Linux keeps 15 characters).
  """
  def threads do
    for tid <- File.ls!("/proc/self/task"), into: %{} do
      {name, utime, stime} = stat(File.read!("/proc/self/task/#{tid}/stat"))

      switches =
        Regex.scan(
          ~r/(?:non)?voluntary_ctxt_switches:\s+(\d+)/,
          File.read!("/proc/self/task/#{tid}/status")
        )
        |> Enum.map(fn [_, n] -> String.to_integer(n) end)
        |> Enum.sum()

      {tid, {String.replace(name, ~r/^\d+_/, ""), utime, stime, switches}}
    end
  end

  # The name is in brackets and may hold spaces and brackets; the fields after it are
  # space-separated, utime and stime the 12th and 13th of them.
  defp stat(text) do
    [_, name, rest] = Regex.run(~r/^\d+ \((.*)\) (.*)$/s, text)
    [utime, stime] = rest |> String.split(" ") |> Enum.slice(11, 2)
    {name, String.to_integer(utime), String.to_integer(stime)}
  end
end
