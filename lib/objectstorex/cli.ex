defmodule ObjectStoreX.CLI do
  @moduledoc false
  # Shared by the `mix objectstorex.*` tasks: strict argument parsing and failing with a
  # message. Locations are in CLI.Location, stores and secrets in CLI.Credentials, what is
  # printed in CLI.Format.

  alias ObjectStoreX.CLI.{Credentials, Location}

  @mib 1_048_576

  # ---------------------------------------------------------------------------------------------
  # Arguments

  @doc """
  Parses `args` strictly against `switches`; an unknown switch or a value of the wrong type
  raises `Mix.Error` naming the option.
  """
  @spec parse!(String.t(), [String.t()], keyword(), keyword()) :: {keyword(), [String.t()]}
  def parse!(task, args, switches, aliases \\ []) do
    case OptionParser.parse(args, strict: switches, aliases: aliases) do
      {opts, argv, []} ->
        {opts, argv}

      {_opts, _argv, [{switch, value} | _]} ->
        known = Enum.map(switches, fn {key, _} -> "--" <> String.replace("#{key}", "_", "-") end)
        short = Enum.map(aliases, fn {key, _} -> "-#{key}" end)

        if switch in known or switch in short do
          fail!(task, "invalid value #{inspect(value)} for #{switch}")
        else
          fail!(task, "unknown option #{switch}")
        end
    end
  end

  @doc "Raises `Mix.Error` with a message prefixed by the task name and a pointer to its help."
  @spec fail!(String.t(), String.t()) :: no_return()
  def fail!(task, message) do
    Mix.raise("#{task}: #{Credentials.redact(message)} (see `mix help #{task}`)")
  end

  @doc "Raises `Mix.Error` with the task name and a message, without the help pointer."
  @spec error!(String.t(), String.t()) :: no_return()
  def error!(task, message), do: Mix.raise("#{task}: #{Credentials.redact(message)}")

  @doc "Parses a location argument, or fails naming what is wrong with it."
  @spec location!(String.t(), String.t()) :: Location.t()
  def location!(task, arg) do
    case Location.parse(arg) do
      {:ok, loc} -> loc
      {:error, message} -> fail!(task, message)
    end
  end

  @doc "The single URL argument of a task, as a store location."
  @spec one_location!(String.t(), [String.t()]) :: Location.t()
  def one_location!(task, [arg]), do: Location.as_store(location!(task, arg))

  def one_location!(task, argv),
    do: fail!(task, "expected one URL, got #{length(argv)} argument(s)")

  @doc "Starts the application and opens the location's store, or fails with the reason."
  @spec open!(String.t(), Location.t()) :: ObjectStoreX.Store.t()
  def open!(task, loc) do
    start!()

    case Credentials.open(loc) do
      {:ok, store} -> store
      {:error, message} -> error!(task, message)
    end
  end

  @doc """
  Starts the application, so that the NIF is loaded: under a Mix project through `app.start`
  (which compiles when needed); under the launcher (`ObjectStoreX.CLI.Main`), which has no
  project, straight from the compiled code.
  """
  @spec start!() :: :ok
  def start! do
    if Mix.Project.get() do
      Mix.Task.run("app.start", [])
    else
      case Application.ensure_all_started(:objectstorex) do
        {:ok, _} -> :ok
        {:error, reason} -> Mix.raise("cannot start ObjectStoreX: #{inspect(reason)}")
      end
    end

    :ok
  end

  @min_part_size ObjectStoreX.Args.min_part_size()

  @doc """
  The `--part-size` of `task`: nil when not given, else the size (see `parse_size/1`), which
  must be at least 5 MiB; anything else raises `Mix.Error` naming the option.
  """
  @spec part_size!(String.t(), String.t() | nil) :: pos_integer() | nil
  def part_size!(_task, nil), do: nil

  def part_size!(task, text) do
    case parse_size(text) do
      {:ok, size} when size >= @min_part_size ->
        size

      {:ok, _} ->
        fail!(task, "--part-size must be at least 5MiB (5242880 bytes), got: #{text}")

      :error ->
        fail!(task, "--part-size must be a size such as 8MiB, 64M or 16777216, got: #{text}")
    end
  end

  @doc """
  A size in bytes: a plain integer, or a number with a unit. `K`, `M`, `G` and `KiB`, `MiB`,
  `GiB` are powers of 1024; `KB`, `MB`, `GB` powers of 1000 (as dd(1) reads them).
  """
  @spec parse_size(String.t()) :: {:ok, non_neg_integer()} | :error
  def parse_size(text) do
    case Regex.run(~r/^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i, text) do
      [_, number, unit] ->
        with {:ok, multiplier} <- unit(String.downcase(unit)) do
          {value, ""} = Float.parse(number)
          bytes = value * multiplier
          if bytes == trunc(bytes), do: {:ok, trunc(bytes)}, else: :error
        end

      nil ->
        :error
    end
  end

  defp unit(u) when u in ["", "b"], do: {:ok, 1}
  defp unit(u) when u in ["k", "kib"], do: {:ok, 1024}
  defp unit(u) when u in ["m", "mib"], do: {:ok, @mib}
  defp unit(u) when u in ["g", "gib"], do: {:ok, 1024 * @mib}
  defp unit("kb"), do: {:ok, 1000}
  defp unit("mb"), do: {:ok, 1_000_000}
  defp unit("gb"), do: {:ok, 1_000_000_000}
  defp unit(_), do: :error

  @doc "Reads a positive integer option, raising a message that names it."
  @spec positive!(String.t(), keyword(), atom()) :: pos_integer() | nil
  def positive!(task, opts, key) do
    case opts[key] do
      nil -> nil
      n when is_integer(n) and n > 0 -> n
      other -> fail!(task, "#{switch(key)} must be a positive integer, got: #{other}")
    end
  end

  @doc "The command-line spelling of an option key: `:part_size` -> `--part-size`."
  @spec switch(atom()) :: String.t()
  def switch(key), do: "--" <> String.replace(Atom.to_string(key), "_", "-")
end
