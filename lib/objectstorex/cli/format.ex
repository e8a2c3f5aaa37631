defmodule ObjectStoreX.CLI.Format do
  @moduledoc false
  # What the `mix objectstorex.*` tasks print: sizes, rates and durations for people, and
  # standard output for bytes.

  @doc "Whether standard error is a terminal (where a progress bar can be redrawn in place)."
  @spec tty?() :: boolean()
  def tty? do
    case :io.columns(:standard_error) do
      {:ok, _} ->
        true

      # OTP before 26 answers :enotsup without a shell even on a terminal: ask test(1), which
      # inherits the VM's standard error.
      _ ->
        case System.find_executable("sh") do
          nil -> false
          sh -> match?({_, 0}, System.cmd(sh, ["-c", "test -t 2"]))
        end
    end
  end

  @doc "Bytes in binary units: `268435456` -> `\"256.0 MiB\"`."
  @spec bytes(non_neg_integer()) :: String.t()
  def bytes(n) when n < 1024, do: "#{n} B"

  def bytes(n), do: scale(n / 1024, ~w(KiB MiB GiB TiB))

  defp scale(value, [unit]), do: format(value, unit)
  defp scale(value, [unit | _]) when value < 1024, do: format(value, unit)
  defp scale(value, [_ | units]), do: scale(value / 1024, units)

  defp format(value, unit), do: "#{:erlang.float_to_binary(value, decimals: 1)} #{unit}"

  @doc "A transfer rate from bytes and microseconds: `\"180.3 MiB/s\"`."
  @spec rate(non_neg_integer(), non_neg_integer()) :: String.t()
  def rate(bytes, micros), do: bytes(trunc(bytes * 1_000_000 / max(micros, 1))) <> "/s"

  @doc "Seconds with two decimals: `\"1.42 s\"`."
  @spec seconds(non_neg_integer()) :: String.t()
  def seconds(micros), do: :erlang.float_to_binary(micros / 1_000_000, decimals: 2) <> " s"

  @doc """
  Runs `fun` with standard output passing bytes unchanged, and restores its encoding after:
  a unicode device would re-encode every byte >= 128 of binary data as UTF-8.
  """
  @spec binary_stdout((() -> result)) :: result when result: term()
  def binary_stdout(fun) do
    encoding = Keyword.get(:io.getopts(:standard_io), :encoding, :latin1)
    :ok = :io.setopts(:standard_io, encoding: :latin1)

    try do
      fun.()
    after
      :io.setopts(:standard_io, encoding: encoding)
    end
  end
end
